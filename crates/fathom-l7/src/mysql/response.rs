//! What the server's packets mean for the command being answered: a state machine over OK,
//! ERR, EOF, result sets (column count, column definitions, optional EOF, rows, EOF/OK
//! terminator, more results), COM_STMT_PREPARE answers, LOCAL INFILE and authentication
//! exchanges.

use super::command as cmd;
use super::packet::{lenenc, Message, MAX_PACKET};
use crate::wire::{lossy, Cursor};

const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// Whether result sets carry an EOF packet after the column definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EofMode {
    /// CLIENT_DEPRECATE_EOF negotiated: no intermediate EOF, OK terminates.
    Deprecated,
    Classic,
    /// Handshake not seen: decided per packet by shape.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    Columns {
        left: u64,
    },
    ColumnsEof,
    Rows,
    PrepareParams {
        left: u64,
        columns: u64,
    },
    PrepareParamsEof {
        columns: u64,
    },
    PrepareColumns {
        left: u64,
    },
    PrepareColumnsEof,
    FieldList,
    /// LOCAL INFILE: the client sends the file; the server then answers OK/ERR.
    Infile,
    /// Authentication (handshake, COM_CHANGE_USER): until OK or ERR.
    Auth,
    /// Binlog stream: events until EOF/ERR.
    Binlog,
}

/// Outcome of the response so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub ok: bool,
    pub error_code: Option<u16>,
    pub sql_state: Option<String>,
    pub error_message: Option<String>,
    pub affected_rows: Option<u64>,
    pub rows: Option<u64>,
    pub columns: Option<u64>,
    /// COM_STMT_PREPARE: the id the server assigned.
    pub statement_id: Option<u32>,
    /// Auth plugin the server switched to.
    pub auth_switch: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Response {
    state: State,
    command: u8,
    eof: EofMode,
    pub outcome: Outcome,
}

/// Is this an EOF packet (or, with CLIENT_DEPRECATE_EOF, an OK packet with the 0xFE header)?
/// A row can only start with 0xFE if its first value is longer than 16 MB, which makes the
/// packet a multi-packet message, so a single 0xFE packet is always a terminator.
fn is_terminator(m: &Message) -> bool {
    m.first() == Some(0xfe) && m.len < MAX_PACKET as u64
}

/// A classic EOF packet (5 bytes with protocol 4.1, 1 byte before).
fn is_eof(m: &Message) -> bool {
    m.first() == Some(0xfe) && m.len < 9
}

impl Response {
    pub(crate) fn new(command: u8, eof: EofMode) -> Self {
        let state = match command {
            cmd::COM_FIELD_LIST => State::FieldList,
            cmd::COM_CHANGE_USER => State::Auth,
            cmd::COM_BINLOG_DUMP | cmd::COM_BINLOG_DUMP_GTID => State::Binlog,
            _ => State::First,
        };
        Response {
            state,
            command,
            eof,
            outcome: Outcome::default(),
        }
    }

    /// The handshake's authentication phase.
    pub(crate) fn auth() -> Self {
        Response {
            state: State::Auth,
            command: 0xff,
            eof: EofMode::Unknown,
            outcome: Outcome::default(),
        }
    }

    /// The client sent a packet while this response is open (LOCAL INFILE data).
    pub(crate) fn waiting_for_client(&self) -> bool {
        self.state == State::Infile || self.state == State::Auth
    }

    fn err(&mut self, m: &Message) {
        let mut c = Cursor::new(&m.data);
        c.u8();
        self.outcome.ok = false;
        self.outcome.error_code = c.le_u16();
        if c.rest().first() == Some(&b'#') {
            c.u8();
            self.outcome.sql_state = c.take(5).map(|s| lossy(s, 5));
        }
        self.outcome.error_message = Some(lossy(c.rest(), 512));
    }

    /// OK (or EOF/OK terminator); returns its status flags.
    fn ok(&mut self, m: &Message) -> u16 {
        let mut c = Cursor::new(&m.data);
        let head = c.u8();
        self.outcome.ok = true;
        if head == Some(0xfe) && m.len < 9 {
            // EOF: warnings, status.
            c.le_u16();
            return c.le_u16().unwrap_or(0);
        }
        let affected = lenenc(&mut c);
        if self.outcome.rows.is_none() {
            if let Some(n) = affected {
                *self.outcome.affected_rows.get_or_insert(0) += n;
            }
        }
        lenenc(&mut c);
        c.le_u16().unwrap_or(0)
    }

    /// Handles one server message; returns true when the response is complete.
    pub(crate) fn on_server(&mut self, m: &Message) -> bool {
        let first = m.first();
        match self.state {
            State::First => match first {
                Some(0xff) => {
                    self.err(m);
                    true
                }
                Some(0x00) if self.command == cmd::COM_STMT_PREPARE => {
                    let mut c = Cursor::new(&m.data);
                    c.u8();
                    self.outcome.ok = true;
                    self.outcome.statement_id = c.le_u32();
                    let columns = c.le_u16().unwrap_or(0) as u64;
                    let params = c.le_u16().unwrap_or(0) as u64;
                    self.outcome.columns = Some(columns);
                    self.state = if params > 0 {
                        State::PrepareParams {
                            left: params,
                            columns,
                        }
                    } else if columns > 0 {
                        State::PrepareColumns { left: columns }
                    } else {
                        return true;
                    };
                    false
                }
                Some(0x00) | Some(0xfe) => self.ok(m) & SERVER_MORE_RESULTS_EXISTS == 0,
                Some(0xfb) if self.command == cmd::COM_QUERY => {
                    self.state = State::Infile;
                    false
                }
                _ if self.command == cmd::COM_STATISTICS => {
                    self.outcome.ok = true;
                    true
                }
                _ => {
                    // A result set: the column count.
                    let n = lenenc(&mut Cursor::new(&m.data)).unwrap_or(0);
                    self.outcome.columns.get_or_insert(n);
                    self.outcome.rows.get_or_insert(0);
                    self.state = if n == 0 {
                        State::Rows
                    } else {
                        State::Columns { left: n }
                    };
                    false
                }
            },
            State::Columns { left } => {
                if first == Some(0xff) {
                    self.err(m);
                    return true;
                }
                self.state = if left > 1 {
                    State::Columns { left: left - 1 }
                } else if self.eof == EofMode::Deprecated {
                    State::Rows
                } else {
                    State::ColumnsEof
                };
                false
            }
            State::ColumnsEof => {
                self.state = State::Rows;
                if is_eof(m) {
                    return false;
                }
                // No EOF here: CLIENT_DEPRECATE_EOF (learned now), so this is a row.
                self.on_server(m)
            }
            State::Rows => match first {
                Some(0xff) => {
                    self.err(m);
                    true
                }
                _ if is_terminator(m) => {
                    let status = self.ok(m);
                    if status & SERVER_MORE_RESULTS_EXISTS != 0 {
                        self.state = State::First;
                        false
                    } else {
                        true
                    }
                }
                _ => {
                    *self.outcome.rows.get_or_insert(0) += 1;
                    false
                }
            },
            State::PrepareParams { left, columns } => {
                self.state = if left > 1 {
                    State::PrepareParams {
                        left: left - 1,
                        columns,
                    }
                } else if self.eof == EofMode::Deprecated {
                    return self.after_params(columns);
                } else {
                    State::PrepareParamsEof { columns }
                };
                false
            }
            State::PrepareParamsEof { columns } => {
                if is_eof(m) {
                    return self.after_params(columns);
                }
                if self.after_params(columns) {
                    return true;
                }
                self.on_server(m)
            }
            State::PrepareColumns { left } => {
                if left > 1 {
                    self.state = State::PrepareColumns { left: left - 1 };
                    false
                } else if self.eof == EofMode::Deprecated {
                    true
                } else {
                    self.state = State::PrepareColumnsEof;
                    false
                }
            }
            // Either the EOF that ends the definitions, or (deprecated EOF learned late)
            // the start of the next response, which the caller cannot tell apart: an EOF
            // ends it, anything else also ends it and is reported as unconsumed.
            State::PrepareColumnsEof => true,
            State::FieldList => match first {
                Some(0xff) => {
                    self.err(m);
                    true
                }
                _ if is_terminator(m) => {
                    self.ok(m);
                    true
                }
                _ => {
                    *self.outcome.columns.get_or_insert(0) += 1;
                    false
                }
            },
            State::Infile => match first {
                Some(0xff) => {
                    self.err(m);
                    true
                }
                _ => self.ok(m) & SERVER_MORE_RESULTS_EXISTS == 0,
            },
            State::Auth => match first {
                Some(0x00) => {
                    self.ok(m);
                    true
                }
                Some(0xff) => {
                    self.err(m);
                    true
                }
                Some(0xfe) => {
                    // AuthSwitchRequest: plugin name, then its data.
                    let mut c = Cursor::new(&m.data);
                    c.u8();
                    self.outcome.auth_switch = c.cstr().map(|p| lossy(p, 64));
                    false
                }
                _ => false,
            },
            State::Binlog => match first {
                Some(0xff) => {
                    self.err(m);
                    true
                }
                _ if is_eof(m) => {
                    self.outcome.ok = true;
                    true
                }
                _ => false,
            },
        }
    }

    /// Whether the PrepareColumnsEof state swallowed a packet that was not an EOF: the
    /// caller re-dispatches it to the next command.
    pub(crate) fn ended_without_eof(&self, m: &Message) -> bool {
        self.state == State::PrepareColumnsEof && !is_eof(m)
    }

    /// Waiting only for an EOF that a server with CLIENT_DEPRECATE_EOF never sends (the
    /// handshake was not seen): a new command from the client means the answer was complete.
    pub(crate) fn optional_tail(&self) -> bool {
        self.eof != EofMode::Classic
            && matches!(
                self.state,
                State::PrepareColumnsEof | State::PrepareParamsEof { columns: 0 }
            )
    }

    fn after_params(&mut self, columns: u64) -> bool {
        if columns > 0 {
            self.state = State::PrepareColumns { left: columns };
            false
        } else {
            true
        }
    }
}
