//! IDX files (plain or gzipped), as `kd_data::idx::read_idx` reads them: any bytes give an
//! array or an error, never a panic or an allocation beyond what the header declares.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(array) = kd_data::idx::decode_idx(data, path) {
        let elements: usize = array.dims.iter().product();
        assert_eq!(array.data.len(), elements);
    }
});
