//! Image-folder datasets, on folders of real PNG and JPEG files the tests write: classes in
//! sorted order, grayscale and colour conversion, both resize modes, the decoded-pixel cache
//! (read when current, rebuilt when a file changes, never trusted half-written), and every
//! bad input named before anything trains.

use std::path::Path;
use std::time::{Duration, SystemTime};

use image::{ImageBuffer, Rgb};
use kd_data::{load_image_folder, ImageFolderConfig, OnBadImage, ResizeMode};

/// A `w` x `h` RGB image whose pixels are `f(x, y)`.
fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| Rgb(f(x, y)))
}

/// Writes `dir/<split>/<class>/<name>` as a solid image of `colour` (PNG or JPEG by name).
fn solid(dir: &Path, split: &str, class: &str, name: &str, colour: [u8; 3]) {
    let folder = dir.join(split).join(class);
    std::fs::create_dir_all(&folder).unwrap();
    rgb(8, 8, |_, _| colour).save(folder.join(name)).unwrap();
}

/// `train/` with classes `zebra` (2 red PNGs) and `ant` (1 green JPEG, 1 gray PNG), and a
/// `test/` with one image of each.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    solid(d, "train", "zebra", "a.png", [200, 0, 0]);
    solid(d, "train", "zebra", "b.png", [210, 0, 0]);
    solid(d, "train", "ant", "c.jpg", [0, 200, 0]);
    let gray = ImageBuffer::from_pixel(8, 8, image::Luma([90u8]));
    gray.save(d.join("train/ant/d.png")).unwrap();
    solid(d, "test", "ant", "e.png", [0, 0, 250]);
    solid(d, "test", "zebra", "f.png", [0, 0, 250]);
    dir
}

fn config(channels: usize, image_size: usize) -> ImageFolderConfig {
    ImageFolderConfig {
        image_size,
        channels,
        ..Default::default()
    }
}

#[test]
fn classes_are_the_sorted_folder_names_and_images_convert_to_the_channels_asked() {
    let dir = folder();
    let splits = load_image_folder(dir.path(), &config(3, 4)).unwrap();
    assert_eq!(splits.classes, ["ant", "zebra"]);
    assert!(splits.val.is_none());
    let train = &splits.train;
    assert_eq!((train.len(), train.image_shape()), (4, [3, 4, 4]));
    // Files in class order, then name order: ant/c.jpg, ant/d.png, zebra/a.png, zebra/b.png.
    assert_eq!(train.labels(), [0, 0, 1, 1]);
    let px = |i: usize, c: usize| train.images()[[i, c, 2, 2]];
    // The JPEG's green within its compression error; the gray PNG on every channel.
    assert!(
        px(0, 1) > 180 && px(0, 0) < 30,
        "{:?}",
        [px(0, 0), px(0, 1)]
    );
    assert_eq!([px(1, 0), px(1, 1), px(1, 2)], [90, 90, 90]);
    assert_eq!([px(2, 0), px(2, 1), px(3, 0)], [200, 0, 210]);
    assert_eq!(splits.test.unwrap().len(), 2);

    // One channel: ITU-R 601 luma of red 200 is 0.299 * 200 = 59.8.
    let gray = load_image_folder(dir.path(), &config(1, 4)).unwrap().train;
    assert_eq!(gray.image_shape(), [1, 4, 4]);
    let luma = gray.images()[[2, 0, 0, 0]];
    assert!((58..=61).contains(&luma), "luma {luma}");
}

#[test]
fn shorter_side_resize_crops_the_centre_and_exact_resize_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    // 40x20: a red left quarter (x < 10), white elsewhere.
    for class in ["a", "b"] {
        let folder = dir.path().join("train").join(class);
        std::fs::create_dir_all(&folder).unwrap();
        let image = rgb(
            40,
            20,
            |x, _| if x < 10 { [255, 0, 0] } else { [255, 255, 255] },
        );
        image.save(folder.join("wide.png")).unwrap();
    }
    let red_columns = |resize| {
        let cfg = ImageFolderConfig {
            resize,
            ..config(3, 16)
        };
        let train = load_image_folder(dir.path(), &cfg).unwrap().train;
        (0..16)
            .filter(|&x| train.images()[[0, 1, 8, x]] < 128)
            .count()
    };
    // Shorter side 20 -> 16 makes it 32 wide, red below x = 8; the centre crop is x 8..24.
    assert_eq!(red_columns(ResizeMode::ShorterSideCenterCrop), 0);
    // Exact 40 -> 16 keeps the red quarter: 4 columns.
    let exact = red_columns(ResizeMode::Exact);
    assert!((3..=5).contains(&exact), "{exact} red columns");
}

#[test]
fn the_cache_is_read_when_current_and_rebuilt_when_a_file_changes() {
    let dir = folder();
    let cfg = config(3, 4);
    let first = load_image_folder(dir.path(), &cfg).unwrap().train;
    let cache = dir.path().join(".kd-cache/train.kdimg");
    assert!(cache.exists());

    // Same size and modification time, other bytes: the cache (not the file) is read.
    let file = dir.path().join("train/zebra/a.png");
    let stamp = std::fs::metadata(&file).unwrap().modified().unwrap();
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    std::fs::write(&file, vec![0u8; len]).unwrap();
    set_modified(&file, stamp);
    let cached = load_image_folder(dir.path(), &cfg).unwrap().train;
    assert_eq!(cached.images(), first.images());

    // A real change (new content, new time): decoded again, and the unreadable file shows.
    set_modified(&file, stamp + Duration::from_secs(5));
    let err = load_image_folder(dir.path(), &cfg).unwrap_err().to_string();
    assert!(err.contains("a.png"), "{err}");
    rgb(8, 8, |_, _| [0, 0, 99]).save(&file).unwrap();
    let rebuilt = load_image_folder(dir.path(), &cfg).unwrap().train;
    assert_eq!(rebuilt.images()[[2, 2, 0, 0]], 99);

    // Other settings are another cache.
    let small = load_image_folder(dir.path(), &config(1, 2)).unwrap().train;
    assert_eq!(small.image_shape(), [1, 2, 2]);
}

#[test]
fn a_half_written_cache_is_never_trusted() {
    let dir = folder();
    let cfg = config(3, 4);
    let whole = load_image_folder(dir.path(), &cfg).unwrap().train;
    let cache = dir.path().join(".kd-cache/train.kdimg");
    // A build killed mid-write leaves a temporary file beside it (never the cache itself,
    // which is renamed into place); a truncated cache with the right key is stale too.
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(dir.path().join(".kd-cache/.tmpXYZ"), &bytes[..20]).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() - 7]).unwrap();
    let again = load_image_folder(dir.path(), &cfg).unwrap().train;
    assert_eq!(again.images(), whole.images());
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        bytes,
        "the cache was rebuilt whole"
    );
}

fn set_modified(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn bad_images_are_all_named_or_skipped_and_counted() {
    let dir = folder();
    let d = dir.path();
    std::fs::write(d.join("train/ant/empty.png"), b"").unwrap();
    // JPEG bytes cut short, under a PNG name.
    let mut jpeg = Vec::new();
    rgb(8, 8, |_, _| [1, 2, 3])
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageOutputFormat::Jpeg(90),
        )
        .unwrap();
    std::fs::write(d.join("train/zebra/cut.png"), &jpeg[..jpeg.len() / 3]).unwrap();
    let err = load_image_folder(d, &config(3, 4)).unwrap_err().to_string();
    assert!(
        err.contains("2 images do not decode")
            && err.contains("empty.png: an empty file (0 bytes)")
            && err.contains("cut.png"),
        "{err}"
    );
    let skip = ImageFolderConfig {
        on_bad_image: OnBadImage::Skip,
        ..config(3, 4)
    };
    assert_eq!(load_image_folder(d, &skip).unwrap().train.len(), 4);
}

#[test]
fn unusable_layouts_are_errors_naming_the_folder() {
    let expect = |dir: &Path, words: &[&str]| {
        let err = load_image_folder(dir, &config(3, 4))
            .unwrap_err()
            .to_string();
        for w in words {
            assert!(err.contains(w), "{err:?} lacks {w:?}");
        }
    };
    // No train/ at all.
    let empty = tempfile::tempdir().unwrap();
    expect(empty.path(), &["train/ folder"]);
    // train/ with files but no class subfolders.
    std::fs::create_dir(empty.path().join("train")).unwrap();
    rgb(4, 4, |_, _| [0, 0, 0])
        .save(empty.path().join("train/x.png"))
        .unwrap();
    expect(empty.path(), &["train", "found none"]);
    // One class only.
    let one = tempfile::tempdir().unwrap();
    solid(one.path(), "train", "cat", "a.png", [1, 1, 1]);
    expect(
        one.path(),
        &["train", "at least two class subfolders, found 1"],
    );
    // An empty class.
    let dir = folder();
    std::fs::create_dir(dir.path().join("train/bee")).unwrap();
    expect(dir.path(), &["train/bee", "an empty class"]);
    // test/ classes that differ from train/'s.
    let dir = folder();
    solid(dir.path(), "test", "moth", "m.png", [1, 1, 1]);
    expect(dir.path(), &["test", "not in train/ [\"moth\"]"]);
    // Settings out of range, by key.
    let err = load_image_folder(folder().path(), &config(2, 4))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.image_folder.channels"), "{err}");
}
