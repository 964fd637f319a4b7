//! A deliberately misbehaving SMTP server, for testing the relay client's
//! hygiene: it forges a reply into the plaintext phase of STARTTLS, or answers
//! a command only after the client's timeout. It logs every line it receives,
//! so a test can check exactly what the client sent and when it hung up.
//!
//! This is not a stand-in for a real MTA (the sink and Postfix are those): it
//! is the attacker or the broken peer whose behaviour is the test's input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server misbehaves.
#[derive(Debug, Clone)]
pub enum Misbehaviour {
    /// Offers STARTTLS; answers it with `220 Ready` and, in the same write,
    /// a forged `250` (what an attacker on the path injects), then waits.
    ForgeAfterStarttls,
    /// Answers the first RCPT TO only after `delay` (longer than the
    /// client's timeout), then everything at once as normal.
    SlowFirstRcpt { delay: Duration },
}

/// A running hostile server on 127.0.0.1 (one connection at a time).
pub struct HostileUpstream {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl HostileUpstream {
    /// Starts it; it serves until the test process ends.
    pub fn start(how: Misbehaviour) -> HostileUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile upstream");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = serve(conn, &how, &l);
                l.lock().unwrap().push("<closed>".into());
            }
        });
        HostileUpstream { port, log }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every line received so far (without CRLF), and `<closed>` where the
    /// client hung up; raw non-line bytes (a TLS ClientHello) as `<binary>`.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `timeout` until the log has a `<closed>` entry.
    pub fn wait_closed(&self, timeout: Duration) -> Vec<String> {
        let until = std::time::Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.iter().any(|l| l == "<closed>") || std::time::Instant::now() > until {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(conn: TcpStream, how: &Misbehaviour, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    w.write_all(b"220 hostile.test ESMTP\r\n")?;
    let mut rcpts = 0;
    loop {
        let mut raw = Vec::new();
        if r.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        if raw.first() == Some(&0x16) {
            // A TLS record: the client started a handshake.
            log.lock().unwrap().push("<binary>".into());
            let mut rest = [0u8; 4096];
            let _ = r.read(&mut rest);
            return Ok(());
        }
        let line = String::from_utf8_lossy(&raw).trim_end().to_string();
        log.lock().unwrap().push(line.clone());
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match (verb.as_str(), how) {
            ("EHLO", Misbehaviour::ForgeAfterStarttls) => {
                w.write_all(b"250-hostile.test\r\n250 STARTTLS\r\n")?
            }
            ("EHLO", _) => w.write_all(b"250-hostile.test\r\n250 8BITMIME\r\n")?,
            ("STARTTLS", _) => {
                w.write_all(b"220 Ready to start TLS\r\n250-forged.test\r\n250 AUTH PLAIN\r\n")?
            }
            ("RCPT", Misbehaviour::SlowFirstRcpt { delay }) => {
                rcpts += 1;
                if rcpts == 1 {
                    std::thread::sleep(*delay);
                }
                w.write_all(b"250 2.1.5 Ok\r\n")?;
            }
            ("DATA", _) => w.write_all(b"354 go ahead\r\n")?,
            ("QUIT", _) => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => w.write_all(b"250 2.0.0 Ok\r\n")?,
        }
    }
}
