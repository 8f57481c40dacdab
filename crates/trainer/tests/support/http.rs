//! A small HTTP/1.1 file server on 127.0.0.1 for the download tests: serves the files of one
//! folder by name, honours `Range: bytes=N-`, can damage what it sends, and stops when
//! dropped (or after two minutes, whichever comes first).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Sends these bytes instead (another, well-formed file).
    Replace(Vec<u8>),
    /// Sends the file with one byte changed in the middle.
    Corrupt,
    /// Sends the first half only, announced as the whole file.
    Truncate,
    /// The first time, announces the whole file but closes the connection after this many
    /// bytes; serves normally afterwards.
    CutOnce(usize),
}

/// A running server; its `url` ends with `/`.
pub struct Server {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// One line per request: `GET /name` plus ` Range: ...` when one was asked.
    pub log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the files of `dir`, with `faults` applied to the named ones.
    pub fn start(dir: PathBuf, faults: Vec<(&'static str, Fault)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            let mut faults = faults;
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve(stream, &dir, &mut faults, &log);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Server {
            url,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `stream`, then closes it.
fn serve(
    stream: TcpStream,
    dir: &std::path::Path,
    faults: &mut Vec<(&'static str, Fault)>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range: Option<usize> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let name = path.trim_start_matches('/').to_string();
    log.lock().unwrap().push(match range {
        Some(r) => format!("GET {path} Range: bytes={r}-"),
        None => format!("GET {path}"),
    });
    let mut out = stream;
    let file = (!name.contains('/') && !name.is_empty())
        .then(|| std::fs::read(dir.join(&name)).ok())
        .flatten();
    let Some(mut body) = file else {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let fault = faults.iter().position(|(n, _)| *n == name);
    let mut cut = None;
    match fault.map(|i| faults[i].1.clone()) {
        Some(Fault::Replace(bytes)) => body = bytes,
        Some(Fault::Corrupt) => {
            let mid = body.len() / 2;
            body[mid] ^= 0x55;
        }
        Some(Fault::Truncate) => body.truncate(body.len() / 2),
        Some(Fault::CutOnce(n)) => {
            cut = Some(n);
            faults.remove(fault.unwrap());
        }
        None => {}
    }
    let total = body.len();
    let (status, start) = match range {
        Some(r) if r < total => ("206 Partial Content", r),
        Some(_) => {
            return out.write_all(
                format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        None => ("200 OK", 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Connection: close\r\n",
        total - start
    );
    if start > 0 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            total - 1
        ));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    let end = cut.map_or(total, |n| (start + n).min(total));
    out.write_all(&body[start..end])?;
    out.flush()?;
    if cut.is_some() {
        let _ = out.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}
