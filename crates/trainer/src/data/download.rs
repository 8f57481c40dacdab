//! Fetching a [`Standard`] data set into a data folder: resumable HTTP downloads, SHA-256
//! checks before anything is moved into place, and unpacking of `.tar.gz` archives that
//! refuses paths outside the folder.
//!
//! A download of `<root>/<name>` works in `<root>/.<name>.download/`:
//! 1. each file is fetched into `<file>.part`; an interrupted transfer leaves the part, and the
//!    next run asks the server for the rest (`Range: bytes=N-`);
//! 2. the complete file is checked against its published SHA-256 (see [`catalog`]); a file
//!    that does not match is deleted and named in the error;
//! 3. only verified files are renamed into the data folder (atomic on one file system), so
//!    the folder never holds a partial or unverified download.

use super::catalog::{self, FileSpec, FileState, Packaging, Standard};
use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tracing::info;

/// The largest file accepted from a server (the official files are at most 170 MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

/// A download that failed; every message names the file or URL and what to do.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// No mirror delivered the file: what each attempt gave.
    #[error(
        "cannot fetch {file}: {attempts}. Check the connection, or give --mirror URL; offline, \
         copy the official files ({files}) into {folder} from a machine that has them, or point \
         at a copy with --data-root DIR or --set data.dir=DIR"
    )]
    Unreachable {
        /// The file.
        file: String,
        /// `URL: what happened`, `; `-separated.
        attempts: String,
        /// The files the folder needs.
        files: String,
        /// The data folder.
        folder: PathBuf,
    },
    /// The transfer stopped before the end; the part is kept.
    #[error(
        "the download of {url} stopped after {have} bytes: {reason}; run the same command again \
         to resume it"
    )]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes now held in the part file.
        have: u64,
        /// What the connection said.
        reason: String,
    },
    /// The file arrived but is not the published one; it was deleted.
    #[error(
        "{file} from {url}: SHA-256 {found} is not the published {expected}; the download was \
         discarded (a damaged or different file: run the command again, or try another --mirror)"
    )]
    Checksum {
        /// The file.
        file: String,
        /// Where it came from.
        url: String,
        /// Its SHA-256.
        found: String,
        /// The published value.
        expected: String,
    },
    /// The file arrived but cannot be read as what it should be; it was deleted.
    #[error("{file} from {url}: {reason}; the download was discarded")]
    Damaged {
        /// The file.
        file: String,
        /// Where it came from.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// An archive entry would land outside the data folder.
    #[error(
        "{url}: the archive holds `{entry}`, a path outside the data folder; refused, nothing \
         was unpacked"
    )]
    UnsafePath {
        /// The archive's URL.
        url: String,
        /// The entry's path.
        entry: String,
    },
    /// The server sends more than [`MAX_DOWNLOAD_BYTES`].
    #[error("{url}: more than {max} bytes, not a file of this data set; refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max: u64,
    },
    /// Another process is downloading into the same folder.
    #[error("{0}: another download into this folder is running")]
    Busy(PathBuf),
    /// Writing to the data root failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where files come from and how progress is shown.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A base URL that replaces the set's official ones (a file's URL is the base followed by
    /// its name).
    pub mirror: Option<String>,
}

/// What a download did with each file of the data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files fetched and verified now.
    pub fetched: Vec<String>,
    /// Files that were already there and verified.
    pub kept: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The work folder of a download into `folder`: `.<name>.download` beside it.
pub fn staging(folder: &Path) -> PathBuf {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    folder.with_file_name(format!(".{name}.download"))
}

/// Fetches the files of `set` that `folder` lacks (or holds in a copy that does not verify),
/// verifies them and moves them into `folder`.
pub fn download(
    set: &Standard,
    folder: &Path,
    options: &Options,
) -> Result<Summary, DownloadError> {
    let work = staging(folder);
    fs::create_dir_all(&work).map_err(io(&work))?;
    let lock_path = work.join("lock");
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(DownloadError::Busy(folder.to_path_buf()));
    }
    let result = fetch_missing(set, folder, &work, options);
    drop(lock);
    // Done, or refused: nothing to resume. (An interrupted or unreachable transfer keeps
    // its part for the next run.)
    let resumable = fs::read_dir(&work).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "part"))
    });
    if result.is_ok() || !resumable {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

/// [`download`] once the work folder is held.
fn fetch_missing(
    set: &Standard,
    folder: &Path,
    work: &Path,
    options: &Options,
) -> Result<Summary, DownloadError> {
    let states = set.check(folder);
    let good = |state: &FileState| matches!(state, FileState::Verified | FileState::Unchecked);
    let kept: Vec<String> = states
        .iter()
        .filter(|(_, s)| good(s))
        .map(|(f, _)| f.name.to_string())
        .collect();
    let wanted: Vec<FileSpec> = states
        .iter()
        .filter(|(f, s)| f.required && !good(s))
        .map(|(f, _)| *f)
        .collect();
    let mut fetched = Vec::new();
    if !wanted.is_empty() {
        let agent = agent();
        match set.packaging {
            Packaging::Files => {
                for spec in &wanted {
                    let (part, url) = fetch(&agent, set, spec, folder, work, options)?;
                    accept_file(&part, spec, &url)?;
                    fs::create_dir_all(folder).map_err(io(folder))?;
                    let dest = folder.join(spec.name);
                    fs::rename(&part, &dest).map_err(io(&dest))?;
                    fetched.push(spec.name.to_string());
                }
            }
            Packaging::TarGz { archive, prefix } => {
                let (part, url) = fetch(&agent, set, &archive, folder, work, options)?;
                let unpacked = work.join("unpacked");
                let result = unpack(&part, &url, prefix, set, &archive, &unpacked);
                if !matches!(result, Err(DownloadError::Io { .. })) {
                    // The archive is used up (unpacked, or damaged and refused).
                    let _ = fs::remove_file(&part);
                }
                result?;
                fs::create_dir_all(folder).map_err(io(folder))?;
                for spec in set.files {
                    let from = unpacked.join(spec.name);
                    if from.is_file() {
                        let dest = folder.join(spec.name);
                        fs::rename(&from, &dest).map_err(io(&dest))?;
                        fetched.push(spec.name.to_string());
                    }
                }
            }
        }
    }
    Ok(Summary { fetched, kept })
}

/// An HTTP client with connect and read timeouts, which hands every status to the caller.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(None)
        .timeout_per_read(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("biofeedback/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Fetches `spec` from the first base URL that serves it into `<work>/<name>.part`,
/// resuming a part left by an earlier run. Returns the part and the URL.
fn fetch(
    agent: &ureq::Agent,
    set: &Standard,
    spec: &FileSpec,
    folder: &Path,
    work: &Path,
    options: &Options,
) -> Result<(PathBuf, String), DownloadError> {
    let part = work.join(format!("{}.part", spec.name));
    let bases: Vec<String> = match &options.mirror {
        Some(m) => vec![m.clone()],
        None => set.mirrors.iter().map(|m| m.to_string()).collect(),
    };
    let mut attempts = Vec::new();
    for base in bases {
        let url = match base.ends_with('/') {
            true => format!("{base}{}", spec.name),
            false => format!("{base}/{}", spec.name),
        };
        match fetch_url(agent, &url, &part, spec.name)? {
            Ok(()) => return Ok((part, url)),
            Err(why) => attempts.push(format!("{url}: {why}")),
        }
    }
    Err(DownloadError::Unreachable {
        file: spec.name.to_string(),
        attempts: attempts.join("; "),
        files: match set.packaging {
            Packaging::Files => set
                .files
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", "),
            Packaging::TarGz { archive, .. } => format!("{}, unpacked", archive.name),
        },
        folder: folder.to_path_buf(),
    })
}

/// One GET of `url` into `part` (appending when the server grants the range after what
/// `part` holds). The outer error stops the download; the inner one lets the next mirror
/// be tried.
fn fetch_url(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    name: &str,
) -> Result<Result<(), String>, DownloadError> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = match request.call() {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let resumed = status == 206
        && header("content-range").is_some_and(|r| r.starts_with(&format!("bytes {have}-")));
    let start = match status {
        200 => 0,
        206 if resumed => have,
        // The part already holds the whole file: verification decides.
        416 if have > 0 => return Ok(Ok(())),
        _ => return Ok(Err(format!("HTTP {status}"))),
    };
    let total = length.map(|l| l + start);
    if total.is_some_and(|t| t > MAX_DOWNLOAD_BYTES) {
        return Err(DownloadError::TooLarge {
            url: url.to_string(),
            max: MAX_DOWNLOAD_BYTES,
        });
    }
    match start {
        0 => info!("fetching {url}{}", size_text(total)),
        _ => info!("resuming {url} at byte {start}{}", size_text(total)),
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(io(part))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bar = bytes_bar(total, name);
    bar.set_position(start);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut written = start;
    let outcome = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                written += n as u64;
                if written > MAX_DOWNLOAD_BYTES {
                    break Err(DownloadError::TooLarge {
                        url: url.to_string(),
                        max: MAX_DOWNLOAD_BYTES,
                    });
                }
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(io(part)(e));
                }
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(DownloadError::Interrupted {
                    url: url.to_string(),
                    have: written,
                    reason: e.to_string(),
                });
            }
        }
    };
    bar.finish_and_clear();
    // Keep what arrived, for a resume; then report.
    let flushed = out
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all());
    if let Err(DownloadError::TooLarge { .. }) = &outcome {
        let _ = fs::remove_file(part);
    }
    outcome?;
    flushed.map_err(io(part))?;
    Ok(Ok(()))
}

/// ` (N MB)` when the size is known.
fn size_text(total: Option<u64>) -> String {
    total
        .map(|t| format!(" ({:.1} MB)", t as f64 / 1e6))
        .unwrap_or_default()
}

/// A byte progress bar on stderr, hidden when stderr is not a terminal.
fn bytes_bar(total: Option<u64>, name: &str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    bar
}

/// Checks a fetched file against `spec`; deletes it when it is not the published file.
fn accept_file(part: &Path, spec: &FileSpec, url: &str) -> Result<(), DownloadError> {
    let refused = |e| {
        let _ = fs::remove_file(part);
        Err(e)
    };
    let damaged = |reason: String| DownloadError::Damaged {
        file: spec.name.to_string(),
        url: url.to_string(),
        reason,
    };
    match catalog::verify_as_distributed(part, spec) {
        Ok(FileState::Verified | FileState::Unchecked) => Ok(()),
        Ok(FileState::Differs(found)) => refused(DownloadError::Checksum {
            file: spec.name.to_string(),
            url: url.to_string(),
            found,
            expected: spec
                .sha256
                .or(spec.content_sha256)
                .unwrap_or_default()
                .to_string(),
        }),
        Ok(FileState::Missing) => refused(damaged("nothing arrived".into())),
        Ok(FileState::Unreadable(reason)) => refused(damaged(reason)),
        Err(e) => refused(damaged(format!(
            "cannot be decompressed: {e} (a damaged or truncated file)"
        ))),
    }
}

/// Unpacks the files of `set` found under `prefix` in the `.tar.gz` at `archive_path` into
/// `into` (emptied first), refusing any entry whose path leaves the archive's root, then
/// verifies them: the archive's own SHA-256 or, for a re-packed copy, every file's.
fn unpack(
    archive_path: &Path,
    url: &str,
    prefix: &str,
    set: &Standard,
    archive: &FileSpec,
    into: &Path,
) -> Result<(), DownloadError> {
    let damaged = |reason: String| DownloadError::Damaged {
        file: archive.name.to_string(),
        url: url.to_string(),
        reason,
    };
    let archive_state = catalog::verify_as_distributed(archive_path, archive)
        .map_err(|e| damaged(format!("cannot be read: {e}")))?;
    let _ = fs::remove_dir_all(into);
    fs::create_dir_all(into).map_err(io(into))?;
    let file = File::open(archive_path).map_err(io(archive_path))?;
    let mut tar = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let entries = tar
        .entries()
        .map_err(|e| damaged(format!("not a .tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(format!("damaged archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| damaged(format!("damaged archive: {e}")))?
            .into_owned();
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(DownloadError::UnsafePath {
                url: url.to_string(),
                entry: path.display().to_string(),
            });
        }
        let name = path.to_string_lossy().replace('\\', "/");
        let Some(spec) = name
            .strip_prefix(prefix)
            .and_then(|rest| set.files.iter().find(|f| f.name == rest))
        else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            return Err(damaged(format!("`{name}` is not a regular file")));
        }
        let dest = into.join(spec.name);
        let mut out = File::create(&dest).map_err(io(&dest))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| damaged(format!("damaged archive at `{name}`: {e}")))?;
    }
    // The whole stream, so a truncated archive is noticed even after the last wanted file.
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| damaged(format!("damaged archive: {e}")))?;
    let archive_ok = matches!(archive_state, FileState::Verified);
    for spec in set.files {
        let path = into.join(spec.name);
        if !path.is_file() {
            match spec.required {
                true => return Err(damaged(format!("the archive lacks {prefix}{}", spec.name))),
                false => continue,
            }
        }
        let state = catalog::verify(&path, spec).map_err(io(&path))?;
        match state {
            FileState::Verified => {}
            FileState::Unchecked if archive_ok || !spec.required => {}
            _ if !archive_ok => {
                return Err(match archive_state {
                    FileState::Differs(found) => DownloadError::Checksum {
                        file: archive.name.to_string(),
                        url: url.to_string(),
                        found,
                        expected: archive.sha256.unwrap_or_default().to_string(),
                    },
                    _ => damaged(format!("{} does not verify", spec.name)),
                });
            }
            _ => {
                return Err(damaged(format!(
                    "{} in the verified archive does not match its published SHA-256",
                    spec.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::section::DatasetKind;

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn gz_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            // Written raw, so a path with `..` can be built too.
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            tar.append(&header, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    /// A set of two files in `set-bin/` of `set.tar.gz`, with the archive's hash `archive`.
    fn set(archive: Option<&'static str>) -> Standard {
        let files: &'static [FileSpec] = Box::leak(Box::new([
            FileSpec {
                name: "a.bin",
                sha256: Some(leak(catalog::sha256_of(&b"first"[..]).unwrap())),
                content_sha256: None,
                required: true,
            },
            FileSpec {
                name: "b.bin",
                sha256: Some(leak(catalog::sha256_of(&b"second"[..]).unwrap())),
                content_sha256: None,
                required: true,
            },
        ]));
        Standard {
            name: "test-set",
            dataset: DatasetKind::Cifar10,
            mirrors: &[],
            packaging: Packaging::TarGz {
                archive: FileSpec {
                    name: "set.tar.gz",
                    sha256: archive,
                    content_sha256: None,
                    required: true,
                },
                prefix: "set-bin/",
            },
            files,
        }
    }

    fn try_unpack(bytes: &[u8], set: &Standard) -> (Result<(), DownloadError>, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let part = tmp.path().join("set.tar.gz.part");
        std::fs::write(&part, bytes).unwrap();
        let Packaging::TarGz { archive, prefix } = set.packaging else {
            unreachable!("the test set is an archive")
        };
        let into = tmp.path().join("unpacked");
        let r = unpack(
            &part,
            "http://host/set.tar.gz",
            prefix,
            set,
            &archive,
            &into,
        );
        (r, tmp)
    }

    #[test]
    fn an_archive_unpacks_its_files_under_the_prefix_and_nothing_else() {
        let bytes = gz_tar(&[
            ("set-bin/a.bin", b"first"),
            ("set-bin/readme.html", b"<p>"),
            ("set-bin/b.bin", b"second"),
            ("elsewhere/a.bin", b"other"),
        ]);
        let hash = leak(catalog::sha256_of(&bytes[..]).unwrap());
        for archive in [Some(hash), None] {
            let (r, tmp) = try_unpack(&bytes, &set(archive));
            r.unwrap();
            let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("unpacked"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["a.bin", "b.bin"]);
            assert_eq!(
                std::fs::read(tmp.path().join("unpacked/b.bin")).unwrap(),
                b"second"
            );
        }
    }

    #[test]
    fn a_path_out_of_the_folder_a_wrong_file_and_a_truncated_archive_are_refused() {
        let evil = gz_tar(&[("set-bin/a.bin", b"first"), ("../escape.bin", b"x")]);
        let (r, tmp) = try_unpack(&evil, &set(None));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("`../escape.bin`") && e.contains("outside"),
            "{e}"
        );
        assert!(!tmp.path().join("escape.bin").exists());

        let wrong = gz_tar(&[("set-bin/a.bin", b"first"), ("set-bin/b.bin", b"changed")]);
        let (r, _tmp) = try_unpack(&wrong, &set(Some(leak("0".repeat(64)))));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("set.tar.gz") && e.contains("is not the published"),
            "{e}"
        );

        let lacking = gz_tar(&[("set-bin/a.bin", b"first")]);
        let (r, _tmp) = try_unpack(&lacking, &set(None));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("lacks set-bin/b.bin"), "{e}");

        let whole = gz_tar(&[("set-bin/a.bin", b"first"), ("set-bin/b.bin", b"second")]);
        let (r, _tmp) = try_unpack(&whole[..whole.len() - 20], &set(None));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("damaged archive") || e.contains("does not verify"),
            "{e}"
        );
    }
}
