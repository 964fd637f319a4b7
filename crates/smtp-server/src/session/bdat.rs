//! BDAT (RFC 3030 CHUNKING): the message in chunks of announced size, as
//! Postfix sends it when the next hop offers CHUNKING.
//!
//! A chunk's bytes follow its command whatever the session thinks of it, so
//! they are always read (and dropped when the command is refused) to keep
//! the session in step. The bytes go through the same reader as DATA in its
//! raw mode: no dot-stuffing and no end line, but the same limits on size
//! and line length, and the same handling of NUL and bare CR/LF. Memory
//! stays bounded by `max_message_size` whatever size a chunk announces.

use std::io;

use tokio::time::timeout;
use tracing::info;

use super::{reply, Flow, Phase, Session};
use crate::data::DataReader;
use crate::Handler;

impl<H: Handler> Session<H> {
    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Flow> {
        let config = self.config.clone();
        let refusal = match &self.phase {
            Phase::Mail(tx) if tx.recipients.is_empty() => {
                Some(reply(554, (5, 5, 1), "No valid recipients"))
            }
            Phase::Mail(_) => None,
            _ => Some(reply(503, (5, 5, 1), "Need MAIL command")),
        };
        let (mut reader, mut reservation) = match &mut self.phase {
            Phase::Mail(tx) if refusal.is_none() => {
                tx.chunks.take().map(|b| *b).unwrap_or_else(|| {
                    let mut reader = DataReader::raw(
                        config.max_message_size,
                        config.max_line_length,
                        config.bare_lf,
                    );
                    if self.budget.exhausted() {
                        reader.over_budget();
                    }
                    (reader, self.budget.reservation())
                })
            }
            // Read into a reader that keeps nothing.
            _ => (
                DataReader::raw(0, config.max_line_length, config.bare_lf),
                self.budget.reservation(),
            ),
        };
        let deadline = tokio::time::Instant::now() + config.data_deadline;
        let mut left = size;
        while left > 0 {
            if self.conn.has_buffered() {
                let buf = self.conn.buffered();
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                reader.feed(&buf[..n]);
                if !reader.is_failed() && !reservation.take(n) {
                    reader.over_budget();
                }
                self.conn.consume(n);
                left -= n as u64;
                continue;
            }
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(config.data_timeout.min(wait), self.conn.fill()).await {
                Err(_) => return Ok(self.timed_out()),
                Ok(Ok(0)) => {
                    info!(peer = %self.client.peer, "connection lost during BDAT");
                    return Ok(Flow::Abort);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
        if let Some(r) = refusal {
            return Ok(self.error(r));
        }
        if reader.is_failed() {
            // The transaction is over (RFC 3030 §2: the client sends no more
            // chunks after an error reply).
            self.phase = Phase::Greeted;
            let r = reader
                .finish()
                .err()
                .unwrap_or_else(|| reply(554, (5, 6, 0), "Message refused"));
            return Ok(self.refuse(r));
        }
        if last {
            reader.end_raw();
            return Ok(self.complete(reader, reservation).await);
        }
        if let Phase::Mail(tx) = &mut self.phase {
            tx.chunks = Some(Box::new((reader, reservation)));
        }
        Ok(self.ok(reply(250, (2, 0, 0), format!("{size} octets received"))))
    }
}
