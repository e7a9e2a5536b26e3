//! HTTP downloads with checksum verification and resume. A file is streamed to
//! `<dest>.part`; an interrupted download leaves the `.part` behind and the next attempt asks
//! the server for the rest (`Range: bytes=N-`), starting over when the server does not
//! honour it. The complete file is hashed and renamed to `dest` only when its digest
//! matches; on a mismatch the `.part` is deleted and the error names both digests. A failed
//! download never leaves a file where a good one is expected.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A published checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Md5(&'static str),
    Sha256(&'static str),
    /// The first hex digits of a SHA-256, as torchvision encodes them in weight file names
    /// (`vgg19-dcbb9e9d.pth`) and `torch.hub` checks them.
    Sha256Prefix(&'static str),
}

impl Checksum {
    fn hasher(self) -> Hasher {
        match self {
            Self::Md5(_) => Hasher::Md5(Md5::new()),
            Self::Sha256(_) | Self::Sha256Prefix(_) => Hasher::Sha256(Sha256::new()),
        }
    }

    /// Hex digest of `bytes` with this checksum's algorithm.
    pub fn digest(self, bytes: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }

    /// Hex digest of the file at `path`, read in 1 MiB chunks.
    pub fn digest_file(self, path: &Path) -> Result<String> {
        let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut h = self.hasher();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish())
    }

    /// The expected hex digest (or its prefix).
    pub fn expected(self) -> &'static str {
        match self {
            Self::Md5(h) | Self::Sha256(h) | Self::Sha256Prefix(h) => h,
        }
    }

    /// Name of the algorithm, for messages.
    pub fn algorithm(self) -> &'static str {
        match self {
            Self::Md5(_) => "md5",
            Self::Sha256(_) => "sha256",
            Self::Sha256Prefix(_) => "sha256 prefix",
        }
    }

    /// Whether the hex digest `got` matches.
    pub fn matches(self, got: &str) -> bool {
        match self {
            Self::Md5(h) | Self::Sha256(h) => got == h,
            Self::Sha256Prefix(p) => got.starts_with(p),
        }
    }

    /// Fails with both digests when `got` does not match; `what` names the data.
    pub fn check(self, got: &str, what: &str) -> Result<()> {
        if !self.matches(got) {
            bail!(
                "{what}: {} mismatch: expected {}, got {got}",
                self.algorithm(),
                self.expected()
            );
        }
        Ok(())
    }

    /// Fails with both digests when `bytes` do not match; `what` names the data.
    pub fn verify(self, bytes: &[u8], what: &str) -> Result<()> {
        self.check(&self.digest(bytes), what)
    }

    /// Fails with both digests when the file at `path` does not match.
    pub fn verify_file(self, path: &Path) -> Result<()> {
        self.check(&self.digest_file(path)?, &path.display().to_string())
    }
}

/// A running digest of one of the supported algorithms.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Md5(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Self::Md5(h) => hex::encode(h.finalize()),
            Self::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

/// How long a server may stay silent (to connect, or between bytes) before a download
/// fails: `KD_HTTP_TIMEOUT` seconds, 60 by default (and for values that are not a positive,
/// representable number of seconds).
fn timeout() -> Duration {
    std::env::var("KD_HTTP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(60))
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(10)))
        .timeout_read(timeout)
        .build()
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`, verifying `checksum`. Resumes from `<dest>.part` when one is
/// there; on a network error keeps it for the next attempt; on a checksum mismatch deletes it.
pub fn download_verified(url: &str, dest: &Path, checksum: Checksum) -> Result<()> {
    download_verified_within(url, dest, checksum, timeout())
}

/// [`download_verified`] with a server that stays silent for `timeout` counted as failed.
fn download_verified_within(
    url: &str,
    dest: &Path,
    checksum: Checksum,
    timeout: Duration,
) -> Result<()> {
    let part = part_path(dest);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent(timeout).get(url);
    if have > 0 {
        eprintln!("xtask: resuming {url} from byte {have}");
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        // 416: the range is past the end (a stale or complete `.part`): start over.
        Err(ureq::Error::Status(416, _)) => {
            std::fs::remove_file(&part).ok();
            agent(timeout).get(url).call()
        }
        other => other,
    }
    .with_context(|| format!("GET {url}"))?;
    let resumed = response.status() == 206;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .with_context(|| format!("{}: cannot create", part.display()))?;
    std::io::copy(&mut response.into_reader(), &mut file)
        .and_then(|_| file.sync_all())
        .with_context(|| {
            format!(
                "GET {url}: interrupted; {} is kept and the next attempt resumes from it",
                part.display()
            )
        })?;
    drop(file);
    if let Err(e) = checksum.verify_file(&part) {
        std::fs::remove_file(&part).ok();
        return Err(e.context(format!(
            "GET {url}: the download is corrupt and was removed"
        )));
    }
    std::fs::rename(&part, dest)
        .with_context(|| format!("{}: cannot rename to {}", part.display(), dest.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// The `(path, Range header)` of every request a test server received.
    pub(crate) type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// One file the test server offers.
    #[derive(Clone)]
    pub(crate) struct Route {
        pub path: &'static str,
        pub status: u16,
        pub body: Vec<u8>,
        /// Close the connection after this many body bytes (announcing the full length).
        pub cut_after: Option<usize>,
        /// Answer `Range: bytes=N-` with 206 and the rest of the body.
        pub ranges: bool,
    }

    impl Route {
        pub(crate) fn ok(path: &'static str, body: Vec<u8>) -> Self {
            Self {
                path,
                status: 200,
                body,
                cut_after: None,
                ranges: true,
            }
        }
    }

    /// Serves `routes` over HTTP/1.1 on 127.0.0.1 from a background thread; unknown paths
    /// get 404. Returns the base URL and the log of `(path, range header)` requests.
    pub(crate) fn serve_routes(routes: Vec<Route>) -> (String, RequestLog) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut range = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line != "\r\n" && !line.is_empty() {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = Some(v.trim().to_string());
                    }
                    line.clear();
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_string();
                seen.lock().unwrap().push((path.clone(), range.clone()));
                let Some(route) = routes.iter().find(|r| r.path == path) else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
                    continue;
                };
                let from = range
                    .filter(|_| route.ranges && route.status == 200)
                    .and_then(|r| {
                        r.strip_prefix("bytes=")?
                            .strip_suffix('-')?
                            .parse::<usize>()
                            .ok()
                    });
                let (status, body) = match from {
                    Some(n) if n >= route.body.len() => (416, Vec::new()),
                    Some(n) => (206, route.body[n..].to_vec()),
                    None => (route.status, route.body.clone()),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let sent = route.cut_after.map_or(body.len(), |c| c.min(body.len()));
                let _ = stream.write_all(&body[..sent]);
            }
        });
        (base, log)
    }

    /// [`serve_routes`] for plain `(path, status, body)` routes.
    pub(crate) fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>) -> String {
        let routes = routes
            .into_iter()
            .map(|(path, status, body)| Route {
                status,
                ..Route::ok(path, body)
            })
            .collect();
        serve_routes(routes).0
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// 100 kB of varied bytes.
    fn payload() -> Vec<u8> {
        (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn md5_and_sha256_match_coreutils() {
        // `printf 'abc' | md5sum` -> 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(
            Checksum::Md5("").digest(b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // `printf 'abc' | sha256sum`
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Checksum::Sha256("").digest(b"abc"), sha);
        assert!(Checksum::Sha256Prefix("ba7816bf").matches(sha));
        assert!(!Checksum::Sha256Prefix("dcbb9e9d").matches(sha));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(Checksum::Sha256("").digest_file(&f).unwrap(), sha);
    }

    #[test]
    fn downloads_and_verifies() {
        let body = payload();
        let md5 = leak(Checksum::Md5("").digest(&body));
        let base = serve(vec![("/f.bin", 200, body.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        download_verified(&format!("{base}/f.bin"), &dest, Checksum::Md5(md5)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert!(!part_path(&dest).exists());
    }

    #[test]
    fn interrupted_download_resumes_with_a_range_request() {
        let body = payload();
        let md5 = leak(Checksum::Md5("").digest(&body));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("archive.tar.gz");
        let cut = Route {
            cut_after: Some(40_000),
            ..Route::ok("/archive.tar.gz", body.clone())
        };
        let (base, _) = serve_routes(vec![cut]);
        let err = download_verified(&format!("{base}/archive.tar.gz"), &dest, Checksum::Md5(md5))
            .unwrap_err();
        assert!(format!("{err:#}").contains("interrupted"), "{err:#}");
        assert!(!dest.exists());
        assert_eq!(std::fs::metadata(part_path(&dest)).unwrap().len(), 40_000);

        let (base, log) = serve_routes(vec![Route::ok("/archive.tar.gz", body.clone())]);
        download_verified(&format!("{base}/archive.tar.gz"), &dest, Checksum::Md5(md5)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert_eq!(log.lock().unwrap()[0].1.as_deref(), Some("bytes=40000-"));
        assert!(!part_path(&dest).exists());
    }

    #[test]
    fn server_without_ranges_restarts_cleanly() {
        let body = payload();
        let md5 = leak(Checksum::Md5("").digest(&body));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        std::fs::write(part_path(&dest), &body[..1234]).unwrap();
        let route = Route {
            ranges: false,
            ..Route::ok("/f.bin", body.clone())
        };
        let (base, _) = serve_routes(vec![route]);
        download_verified(&format!("{base}/f.bin"), &dest, Checksum::Md5(md5)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
    }

    #[test]
    fn stale_part_longer_than_the_file_restarts() {
        let body = payload();
        let md5 = leak(Checksum::Md5("").digest(&body));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        std::fs::write(part_path(&dest), vec![0u8; 200_000]).unwrap();
        let (base, _) = serve_routes(vec![Route::ok("/f.bin", body.clone())]);
        download_verified(&format!("{base}/f.bin"), &dest, Checksum::Md5(md5)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
    }

    #[test]
    fn corrupt_download_is_removed_and_both_digests_named() {
        let base = serve(vec![("/f.bin", 200, b"tampered".to_vec())]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let expected = "900150983cd24fb0d6963f7d28e17f72";
        let err = download_verified(&format!("{base}/f.bin"), &dest, Checksum::Md5(expected))
            .unwrap_err();
        let msg = format!("{err:#}");
        let got = Checksum::Md5("").digest(b"tampered");
        assert!(
            msg.contains("md5 mismatch") && msg.contains(expected) && msg.contains(&got),
            "{msg}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn http_error_is_reported_with_the_url() {
        let base = serve(vec![]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/missing.gz");
        let err = download_verified(&url, &dir.path().join("x"), Checksum::Md5("")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_server_that_never_answers_times_out_naming_the_url() {
        // Accepts connections and never sends a byte.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/silent.gz", listener.local_addr().unwrap());
        let hold = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(5));
            drop(conn);
        });
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let err = download_verified_within(
            &url,
            &dir.path().join("x"),
            Checksum::Md5(""),
            Duration::from_millis(500),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&url) && msg.contains("timed out"), "{msg}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "gave up in time"
        );
        hold.join().unwrap();
    }
}
