//! Client commands: names and the fields the parser reports (statement text, statement id,
//! schema), including MySQL 8 query attributes in front of COM_QUERY text.

use super::packet::{lenenc, lenenc_bytes};
use crate::wire::{lossy, Cursor};

pub(crate) const COM_QUIT: u8 = 0x01;
pub(crate) const COM_INIT_DB: u8 = 0x02;
pub(crate) const COM_QUERY: u8 = 0x03;
pub(crate) const COM_FIELD_LIST: u8 = 0x04;
pub(crate) const COM_STATISTICS: u8 = 0x09;
pub(crate) const COM_CHANGE_USER: u8 = 0x11;
pub(crate) const COM_BINLOG_DUMP: u8 = 0x12;
pub(crate) const COM_STMT_PREPARE: u8 = 0x16;
pub(crate) const COM_STMT_EXECUTE: u8 = 0x17;
pub(crate) const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub(crate) const COM_STMT_CLOSE: u8 = 0x19;
pub(crate) const COM_STMT_FETCH: u8 = 0x1c;
pub(crate) const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
pub(crate) const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

pub(crate) fn name(cmd: u8) -> Option<&'static str> {
    Some(match cmd {
        0x00 => "COM_SLEEP",
        0x01 => "COM_QUIT",
        0x02 => "COM_INIT_DB",
        0x03 => "COM_QUERY",
        0x04 => "COM_FIELD_LIST",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x09 => "COM_STATISTICS",
        0x0a => "COM_PROCESS_INFO",
        0x0b => "COM_CONNECT",
        0x0c => "COM_PROCESS_KILL",
        0x0d => "COM_DEBUG",
        0x0e => "COM_PING",
        0x0f => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x13 => "COM_TABLE_DUMP",
        0x14 => "COM_CONNECT_OUT",
        0x15 => "COM_REGISTER_SLAVE",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x19 => "COM_STMT_CLOSE",
        0x1a => "COM_STMT_RESET",
        0x1b => "COM_SET_OPTION",
        0x1c => "COM_STMT_FETCH",
        0x1d => "COM_DAEMON",
        0x1e => "COM_BINLOG_DUMP_GTID",
        0x1f => "COM_RESET_CONNECTION",
        0x20 => "COM_CLONE",
        0xfa => "COM_STMT_BULK_EXECUTE",
        _ => return None,
    })
}

/// Commands the server does not answer.
pub(crate) fn no_response(cmd: u8) -> bool {
    matches!(cmd, COM_QUIT | COM_STMT_SEND_LONG_DATA | COM_STMT_CLOSE)
}

/// Could `payload` (its first bytes; `len` in all) be a client command? Used to find a
/// command boundary after a gap, so it insists on the shape of the common commands.
pub(crate) fn plausible(payload: &[u8], len: u32) -> bool {
    let Some((&cmd, rest)) = payload.split_first() else {
        return false;
    };
    // SQL starts with a keyword, a parenthesis, a comment or white space, and is text.
    let sql = |b: &[u8]| {
        len < 1 << 20
            && b.first()
                .is_some_and(|c| c.is_ascii_alphabetic() || b"(/-# \t\r\n".contains(c))
            && b.iter().all(|&c| c >= 0x20 || b"\t\r\n".contains(&c))
    };
    match cmd {
        COM_QUIT | COM_STATISTICS | 0x0e | 0x1f => len == 1,
        COM_QUERY | COM_STMT_PREPARE => sql(rest),
        COM_INIT_DB | COM_FIELD_LIST => {
            len > 1 && len < 512 && rest.first().is_some_and(|c| c.is_ascii_graphic())
        }
        COM_STMT_CLOSE | 0x1a => len == 5,
        COM_STMT_EXECUTE => len >= 10,
        COM_STMT_FETCH => len == 9,
        0x1b => len == 3,
        _ => false,
    }
}

/// Statement id of COM_STMT_EXECUTE/CLOSE/RESET/FETCH/SEND_LONG_DATA/BULK_EXECUTE.
pub(crate) fn statement_id(body: &[u8]) -> Option<u32> {
    Cursor::new(body).le_u32()
}

/// COM_QUERY text. With CLIENT_QUERY_ATTRIBUTES the text follows a parameter block:
/// count, set count, null bitmap, types and names, binary values.
pub(crate) fn query_text(body: &[u8], attributes: bool, max: usize) -> String {
    if attributes {
        if let Some(at) = skip_query_attributes(body) {
            return lossy(&body[at..], max);
        }
    }
    lossy(body, max)
}

fn skip_query_attributes(body: &[u8]) -> Option<usize> {
    let mut c = Cursor::new(body);
    let count = lenenc(&mut c)?;
    let _sets = lenenc(&mut c)?;
    if count == 0 {
        return Some(c.pos());
    }
    let count = usize::try_from(count).ok().filter(|&n| n <= 4096)?;
    let bitmap = c.take(count.div_ceil(8))?;
    let bound = c.u8()?;
    if bound != 1 {
        return Some(c.pos());
    }
    let mut types = Vec::with_capacity(count);
    for _ in 0..count {
        let ty = c.le_u16()?;
        lenenc_bytes(&mut c)?; // name
        types.push(ty as u8);
    }
    for (i, ty) in types.into_iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            continue; // NULL: no value
        }
        skip_binary_value(&mut c, ty)?;
    }
    Some(c.pos())
}

/// Skips one value of the binary protocol of type `ty`.
fn skip_binary_value(c: &mut Cursor<'_>, ty: u8) -> Option<()> {
    match ty {
        0x06 => Some(()),                // NULL
        0x01 => c.skip(1),               // TINY
        0x02 | 0x0d => c.skip(2),        // SHORT, YEAR
        0x03 | 0x09 | 0x04 => c.skip(4), // LONG, INT24, FLOAT
        0x05 | 0x08 => c.skip(8),        // DOUBLE, LONGLONG
        0x07 | 0x0a | 0x0b | 0x0c => {
            // TIMESTAMP, DATE, TIME, DATETIME: length byte then that many bytes.
            let n = c.u8()?;
            c.skip(n as usize)
        }
        _ => lenenc_bytes(c).map(|_| ()), // strings, blobs, decimals, JSON, …
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_attributes() {
        // One attribute "a" of type LONGLONG = 5, then the text.
        let mut b = vec![1, 1, 0, 1, 0x08, 0, 1, b'a'];
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(b"select 1");
        assert_eq!(query_text(&b, true, 100), "select 1");
        assert_eq!(query_text(&[0, 1, b's'], true, 100), "s");
        assert_eq!(query_text(b"select 2", false, 100), "select 2");
    }
}
