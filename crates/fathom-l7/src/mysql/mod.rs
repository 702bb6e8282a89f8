//! MySQL / MariaDB client/server protocol.
//!
//! Exchanges:
//! - `handshake`: the client's HandshakeResponse (and any auth-switch / more-data packets it
//!   sends) answered by the server's authentication packets up to OK or ERR; carries the
//!   server version from the greeting, user, schema and auth plugin. An SSLRequest ends
//!   MySQL parsing and is reported as `ssl_request`; the TLS handshake after it is handed to
//!   the TLS parser, which reports SNI, version and cipher as for any TLS connection;
//! - one exchange per command (`COM_QUERY`, `COM_STMT_PREPARE`, …) answered by OK, ERR or a
//!   result set (column count, definitions, rows, terminator, further result sets);
//! - COM_QUIT, COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA get no answer and are messages.
//!
//! Packets are reassembled into logical messages across 16 MB continuation packets; only the
//! first `max_message` bytes of each are kept.

mod command;
mod detect;
mod handshake;
mod packet;
mod response;

pub use detect::detect;

use std::collections::{HashMap, VecDeque};

use fathom_model::l7::mysql::MysqlMessage;
use fathom_model::l7::{L7Detail, L7Exchange, L7Protocol};

use crate::parser::{Direction, ParserStats, ProtocolParser};
use crate::wire::{build, lossy, Half};
use packet::{Message, Next, Reader};
use response::{EofMode, Response};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct MysqlConfig {
    /// Bytes of a logical message kept for decoding (statement text, greeting, …).
    pub max_message: usize,
    /// Commands waiting for their answer.
    pub max_pending: usize,
    /// Bytes kept of statement texts.
    pub max_text: usize,
    /// Prepared statements remembered (id → text) to name what COM_STMT_EXECUTE runs.
    pub max_prepared: usize,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            max_message: 64 * 1024,
            max_pending: 256,
            max_text: 4096,
            max_prepared: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the greeting / handshake response.
    Connect,
    /// Commands.
    Command,
    /// TLS after SSLRequest: the bytes go to the TLS parser (SNI, version, cipher).
    Encrypted,
}

struct Pending {
    req: Half,
    resp: Option<Half>,
    msg: MysqlMessage,
    response: Response,
}

pub struct MysqlParser {
    cfg: MysqlConfig,
    client: Reader,
    server: Reader,
    phase: Phase,
    server_caps: Option<u32>,
    client_caps: Option<u32>,
    server_version: Option<String>,
    /// Server plugin from the greeting; replaced by an auth switch.
    greeting_plugin: Option<String>,
    greeting: Option<Half>,
    pending: VecDeque<Pending>,
    /// A response whose command was not seen (mid-stream pickup).
    orphan: Option<(Half, Response)>,
    prepared: HashMap<u32, String>,
    /// Server bytes were lost: the answers in progress cannot be followed; server bytes are
    /// dropped until the client's next command starts a fresh answer.
    server_lost: bool,
    /// After SSLRequest: the TLS handshake that follows.
    tls: Option<Box<crate::tls::TlsParser>>,
    stats: ParserStats,
}

impl Default for MysqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl MysqlParser {
    pub fn new() -> Self {
        Self::with_config(MysqlConfig::default())
    }

    pub fn with_config(cfg: MysqlConfig) -> Self {
        MysqlParser {
            cfg,
            client: Reader::default(),
            server: Reader::default(),
            phase: Phase::Connect,
            server_caps: None,
            client_caps: None,
            server_version: None,
            greeting_plugin: None,
            greeting: None,
            pending: VecDeque::new(),
            orphan: None,
            prepared: HashMap::new(),
            server_lost: false,
            tls: None,
            stats: ParserStats::default(),
        }
    }

    fn eof_mode(&self) -> EofMode {
        match (self.server_caps, self.client_caps) {
            (Some(s), Some(c)) if s & c & handshake::CLIENT_DEPRECATE_EOF != 0 => {
                EofMode::Deprecated
            }
            (Some(_), Some(_)) => EofMode::Classic,
            _ => EofMode::Unknown,
        }
    }

    fn query_attributes(&self) -> bool {
        let both = self.server_caps.unwrap_or(0) & self.client_caps.unwrap_or(0);
        both & handshake::CLIENT_QUERY_ATTRIBUTES != 0
    }

    fn max(&self) -> usize {
        self.cfg.max_message.max(64)
    }

    fn run(&mut self, dir: Direction, out: &mut Vec<L7Exchange>) {
        let max = self.max();
        loop {
            if self.phase == Phase::Encrypted {
                // Bytes already buffered after the SSLRequest are the TLS handshake's start.
                if let Some(tls) = self.tls.as_mut() {
                    for (d, r) in [
                        (Direction::ClientToServer, &self.client),
                        (Direction::ServerToClient, &self.server),
                    ] {
                        if !r.buf.is_empty() {
                            tls.feed(d, r.buf.ts(), r.buf.data(), out);
                        }
                    }
                }
                self.client.reset();
                self.server.reset();
                return;
            }
            let reader = match dir {
                Direction::ClientToServer => &mut self.client,
                Direction::ServerToClient => &mut self.server,
            };
            let next = reader.next(max);
            self.stats.skipped_bytes += std::mem::take(&mut reader.skipped);
            match next {
                Next::Wait => return,
                Next::Message(m) => match dir {
                    Direction::ClientToServer => self.on_client(m, out),
                    Direction::ServerToClient => self.on_server(m, out),
                },
            }
        }
    }

    fn on_client(&mut self, m: Message, out: &mut Vec<L7Exchange>) {
        let half = Half::new(m.ts, m.wire);
        // Packets continuing an exchange: auth data, LOCAL INFILE contents.
        if m.seq != 0 {
            if let Some(p) = self
                .pending
                .back_mut()
                .filter(|p| p.response.waiting_for_client())
            {
                p.req.bytes += m.wire;
                return;
            }
            if self.phase == Phase::Connect || m.seq == 1 {
                if let Some(r) = handshake::response(&m.data) {
                    self.on_handshake_response(r, half, out);
                    return;
                }
            }
            self.stats.skipped_bytes += m.wire;
            return;
        }
        self.phase = Phase::Command;
        if self.server_lost {
            // Answers to everything sent before are (partly) lost.
            self.server_lost = false;
            self.stats.skipped_bytes += self.server.reset();
            self.orphan = None;
            while let Some(p) = self.pending.pop_front() {
                self.emit(p, out);
            }
        }
        let Some(&cmd) = m.data.first() else {
            self.stats.skipped_bytes += m.wire;
            return;
        };
        let Some(name) = command::name(cmd) else {
            self.stats.skipped_bytes += m.wire;
            return;
        };
        // A server that never sends the optional EOF has finished the previous answer.
        if self
            .pending
            .front()
            .is_some_and(|p| p.response.optional_tail() && p.resp.is_some())
        {
            if let Some(p) = self.pending.pop_front() {
                self.emit(p, out);
            }
        }
        let body = &m.data[1..];
        let max_text = self.cfg.max_text;
        let mut msg = MysqlMessage {
            command: name.to_string(),
            ..MysqlMessage::default()
        };
        match cmd {
            command::COM_QUERY => {
                msg.statement = Some(command::query_text(body, self.query_attributes(), max_text))
            }
            command::COM_STMT_PREPARE | command::COM_FIELD_LIST => {
                let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                msg.statement = Some(lossy(&body[..end], max_text));
            }
            command::COM_INIT_DB => msg.database = Some(lossy(body, 256)),
            command::COM_CHANGE_USER => {
                let (user, db) = handshake::change_user(body, self.client_caps.unwrap_or(0));
                msg.user = user;
                msg.database = db;
            }
            command::COM_STMT_EXECUTE
            | command::COM_STMT_CLOSE
            | command::COM_STMT_SEND_LONG_DATA
            | command::COM_STMT_FETCH
            | command::COM_STMT_BULK_EXECUTE
            | 0x1a => {
                msg.statement_id = command::statement_id(body);
                msg.statement = msg
                    .statement_id
                    .and_then(|id| self.prepared.get(&id).cloned());
                if cmd == command::COM_STMT_CLOSE {
                    if let Some(id) = msg.statement_id {
                        self.prepared.remove(&id);
                    }
                }
            }
            _ => {}
        }
        if command::no_response(cmd) {
            self.stats.records += 1;
            out.push(build(
                Some(half),
                None,
                true,
                None,
                false,
                L7Detail::Mysql(msg),
            ));
            return;
        }
        let response = Response::new(cmd, self.eof_mode());
        self.push(
            Pending {
                req: half,
                resp: None,
                msg,
                response,
            },
            out,
        );
    }

    fn push(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        if self.pending.len() >= self.cfg.max_pending.max(1) {
            if let Some(old) = self.pending.pop_front() {
                self.stats.overflow_bytes += old.req.bytes;
                self.emit(old, out);
            }
        }
        self.pending.push_back(p);
    }

    fn on_handshake_response(
        &mut self,
        r: handshake::Response,
        half: Half,
        out: &mut Vec<L7Exchange>,
    ) {
        self.client_caps = Some(r.caps);
        let mut msg = MysqlMessage {
            command: if r.ssl { "ssl_request" } else { "handshake" }.to_string(),
            server_version: self.server_version.clone(),
            user: r.user,
            database: r.database,
            auth_plugin: r.plugin.or_else(|| self.greeting_plugin.clone()),
            ..MysqlMessage::default()
        };
        self.greeting = None;
        if r.ssl {
            msg.auth_plugin = None;
            self.phase = Phase::Encrypted;
            self.tls = Some(Box::default());
            self.stats.records += 1;
            out.push(build(
                Some(half),
                None,
                true,
                None,
                false,
                L7Detail::Mysql(msg),
            ));
            return;
        }
        self.push(
            Pending {
                req: half,
                resp: None,
                msg,
                response: Response::auth(),
            },
            out,
        );
    }

    fn on_server(&mut self, m: Message, out: &mut Vec<L7Exchange>) {
        if self.phase == Phase::Connect && m.seq == 0 && self.pending.is_empty() {
            if let Some(g) = handshake::greeting(&m.data) {
                self.server_caps = Some(g.caps);
                self.server_version = Some(g.version);
                self.greeting_plugin = g.plugin;
                self.greeting = Some(Half::new(m.ts, m.wire));
                return;
            }
            if m.first() == Some(0xff) {
                // Refused before the handshake ("Host … is not allowed to connect").
                let mut r = Response::auth();
                r.on_server(&m);
                let msg = MysqlMessage {
                    command: "handshake".to_string(),
                    ..MysqlMessage::default()
                };
                let p = Pending {
                    req: Half::new(m.ts, 0),
                    resp: Some(Half::new(m.ts, m.wire)),
                    msg,
                    response: r,
                };
                self.emit_one_sided(p, out);
                return;
            }
        }
        let Some(p) = self.pending.front_mut() else {
            self.on_orphan(m, out);
            return;
        };
        match p.resp.as_mut() {
            Some(h) => h.bytes += m.wire,
            None => p.resp = Some(Half::new(m.ts, m.wire)),
        }
        let done = p.response.on_server(&m);
        let redispatch = done && p.response.ended_without_eof(&m);
        if redispatch {
            if let Some(h) = p.resp.as_mut() {
                h.bytes -= m.wire;
            }
        }
        if done {
            if let Some(p) = self.pending.pop_front() {
                self.emit(p, out);
            }
        }
        if redispatch {
            self.on_server(m, out);
        }
    }

    /// A response to a command we did not see: follow its shape and report it alone.
    fn on_orphan(&mut self, m: Message, out: &mut Vec<L7Exchange>) {
        let eof = self.eof_mode();
        let (half, r) = self
            .orphan
            .get_or_insert_with(|| (Half::new(m.ts, 0), Response::new(command::COM_QUERY, eof)));
        half.bytes += m.wire;
        if r.on_server(&m) {
            if let Some((half, response)) = self.orphan.take() {
                let msg = MysqlMessage {
                    command: "unknown".to_string(),
                    ..MysqlMessage::default()
                };
                let p = Pending {
                    req: half,
                    resp: Some(half),
                    msg,
                    response,
                };
                self.emit_one_sided(p, out);
            }
        }
    }

    fn finalize(&mut self, mut p: Pending) -> (MysqlMessage, Option<String>, bool) {
        let o = std::mem::take(&mut p.response.outcome);
        let answered = p.resp.is_some();
        let msg = &mut p.msg;
        if let Some(id) = o.statement_id {
            msg.statement_id = Some(id);
            if let Some(text) = msg.statement.clone() {
                if self.prepared.len() < self.cfg.max_prepared {
                    self.prepared.insert(id, text);
                }
            }
        }
        msg.error_code = o.error_code;
        msg.sql_state = o.sql_state;
        msg.error_message = o.error_message;
        msg.affected_rows = o.affected_rows;
        msg.rows = o.rows;
        msg.columns = o.columns;
        if o.auth_switch.is_some() {
            msg.auth_plugin = o.auth_switch;
        }
        let failed = msg.error_code.is_some();
        if msg.command == "handshake" {
            // The OK that ends authentication carries no meaningful row count.
            msg.affected_rows = None;
            if answered {
                msg.auth_outcome = Some(if o.ok && !failed { "ok" } else { "failed" }.to_string());
            }
        }
        let status = match (msg.error_code, answered) {
            (Some(code), _) => Some(code.to_string()),
            (None, true) if o.ok || msg.rows.is_some() || msg.columns.is_some() => {
                Some("OK".to_string())
            }
            _ => None,
        };
        (p.msg, status, failed)
    }

    fn emit(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        let (req, resp) = (p.req, p.resp);
        let (msg, status, failed) = self.finalize(p);
        self.stats.records += 1;
        out.push(build(
            Some(req),
            resp,
            false,
            status,
            failed,
            L7Detail::Mysql(msg),
        ));
    }

    fn emit_one_sided(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        let resp = p.resp;
        let (msg, status, failed) = self.finalize(p);
        self.stats.records += 1;
        out.push(build(
            None,
            resp,
            false,
            status,
            failed,
            L7Detail::Mysql(msg),
        ));
    }
}

impl ProtocolParser for MysqlParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Mysql
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        if self.phase == Phase::Encrypted {
            if let Some(tls) = self.tls.as_mut() {
                tls.feed(dir, ts_ns, data, out);
            }
            return;
        }
        if self.server_lost && dir == Direction::ServerToClient {
            self.stats.skipped_bytes += data.len() as u64;
            return;
        }
        for piece in data.chunks(self.max()) {
            if self.phase == Phase::Encrypted {
                // The SSLRequest was in an earlier piece of this chunk.
                if let Some(tls) = self.tls.as_mut() {
                    tls.feed(dir, ts_ns, piece, out);
                }
                continue;
            }
            let reader = match dir {
                Direction::ClientToServer => &mut self.client,
                Direction::ServerToClient => &mut self.server,
            };
            reader.buf.push(ts_ns, piece);
            self.run(dir, out);
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        if let Some(tls) = self.tls.as_mut() {
            tls.gap(dir, len);
            return;
        }
        self.stats.gap_bytes += len;
        let reader = match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        self.stats.skipped_bytes += reader.reset();
        match dir {
            Direction::ClientToServer => reader.resync = true,
            Direction::ServerToClient => self.server_lost = true,
        }
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<L7Exchange>) {
        if let Some(tls) = self.tls.as_mut() {
            tls.finish(ts_ns, out);
        }
        if self.phase != Phase::Encrypted {
            self.stats.skipped_bytes += (self.client.buf.len() + self.server.buf.len()) as u64;
        }
        self.client.reset();
        self.server.reset();
        if let Some(g) = self.greeting.take() {
            // A greeting nobody answered (port scan, health check): still worth a record.
            let msg = MysqlMessage {
                command: "handshake".to_string(),
                server_version: self.server_version.clone(),
                auth_plugin: self.greeting_plugin.clone(),
                ..MysqlMessage::default()
            };
            self.stats.records += 1;
            out.push(build(
                None,
                Some(g),
                false,
                None,
                false,
                L7Detail::Mysql(msg),
            ));
        }
        while let Some(p) = self.pending.pop_front() {
            self.emit(p, out);
        }
        if let Some((half, response)) = self.orphan.take() {
            let msg = MysqlMessage {
                command: "unknown".to_string(),
                ..MysqlMessage::default()
            };
            let p = Pending {
                req: half,
                resp: Some(half),
                msg,
                response,
            };
            self.emit_one_sided(p, out);
        }
    }

    fn stats(&self) -> ParserStats {
        let mut s = self.stats;
        if let Some(t) = &self.tls {
            let t = t.stats();
            s.records += t.records;
            s.skipped_bytes += t.skipped_bytes;
            s.gap_bytes += t.gap_bytes;
            s.overflow_bytes += t.overflow_bytes;
        }
        s
    }
}
