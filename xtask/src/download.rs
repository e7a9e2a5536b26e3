//! HTTP downloads with checksum verification. A file is streamed to `<dest>.part`, hashed
//! on the way, and renamed to `dest` only when its digest matches: a failed or corrupt
//! download never leaves a file where a good one is expected.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A published checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Md5(&'static str),
    Sha256(&'static str),
}

impl Checksum {
    /// Hex digest of `bytes` with this checksum's algorithm.
    pub fn digest(self, bytes: &[u8]) -> String {
        match self {
            Self::Md5(_) => hex::encode(Md5::digest(bytes)),
            Self::Sha256(_) => hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The expected hex digest.
    pub fn expected(self) -> &'static str {
        match self {
            Self::Md5(h) | Self::Sha256(h) => h,
        }
    }

    /// Name of the algorithm, for messages.
    pub fn algorithm(self) -> &'static str {
        match self {
            Self::Md5(_) => "md5",
            Self::Sha256(_) => "sha256",
        }
    }

    /// Fails with both digests when `bytes` do not match; `what` names the data.
    pub fn verify(self, bytes: &[u8], what: &str) -> Result<()> {
        let got = self.digest(bytes);
        if got != self.expected() {
            bail!(
                "{what}: {} mismatch: expected {}, got {got}",
                self.algorithm(),
                self.expected()
            );
        }
        Ok(())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .build()
}

/// Downloads `url` to `dest`, verifying `checksum`; leaves nothing at `dest` on failure.
pub fn download_verified(url: &str, dest: &Path, checksum: Checksum) -> Result<()> {
    let part = dest.with_extension("part");
    let result = (|| -> Result<()> {
        let response = agent()
            .get(url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let mut body = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut body)
            .with_context(|| format!("GET {url}: reading the body"))?;
        checksum.verify(&body, url)?;
        let mut f = std::fs::File::create(&part)
            .with_context(|| format!("{}: cannot create", part.display()))?;
        f.write_all(&body)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("{}: cannot write", part.display()))?;
        std::fs::rename(&part, dest)
            .with_context(|| format!("{}: cannot rename to {}", part.display(), dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `routes` (path -> (status, body)) over HTTP/1.1 on 127.0.0.1 from a background
    /// thread; returns the base URL. Unknown paths get 404.
    pub(crate) fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line != "\r\n" && !line.is_empty() {
                    line.clear();
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_string();
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, b"not found".to_vec()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        base
    }

    #[test]
    fn md5_matches_coreutils() {
        // `printf 'abc' | md5sum` -> 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(
            Checksum::Md5("").digest(b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // `printf 'abc' | sha256sum`
        assert_eq!(
            Checksum::Sha256("").digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn downloads_and_verifies() {
        let body = b"some published bytes".to_vec();
        let md5 = Box::leak(Checksum::Md5("").digest(&body).into_boxed_str());
        let base = serve(vec![("/f.bin", 200, body.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        download_verified(&format!("{base}/f.bin"), &dest, Checksum::Md5(md5)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
    }

    #[test]
    fn corrupt_download_leaves_nothing_behind() {
        let base = serve(vec![("/f.bin", 200, b"tampered".to_vec())]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let err = download_verified(
            &format!("{base}/f.bin"),
            &dest,
            Checksum::Md5("900150983cd24fb0d6963f7d28e17f72"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("md5 mismatch"), "{err:#}");
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn http_error_is_reported_with_the_url() {
        let base = serve(vec![]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/missing.gz");
        let err = download_verified(&url, &dir.path().join("x"), Checksum::Md5("")).unwrap_err();
        assert!(format!("{err:#}").contains(&url), "{err:#}");
    }
}
