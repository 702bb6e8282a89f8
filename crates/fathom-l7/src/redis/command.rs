//! What a Redis command is called and which argument is its key.

/// Commands whose first argument is a subcommand; the record names both ("CLIENT SETNAME").
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Commands without a key argument (connection, server, pub/sub and scripting commands whose
/// first argument is something else: a channel, a pattern, a password, a script).
const NO_KEY: &[&str] = &[
    "AUTH",
    "BGREWRITEAOF",
    "BGSAVE",
    "DBSIZE",
    "DISCARD",
    "ECHO",
    "EXEC",
    "FAILOVER",
    "FLUSHALL",
    "FLUSHDB",
    "HELLO",
    "INFO",
    "KEYS",
    "LASTSAVE",
    "LOLWUT",
    "MONITOR",
    "MULTI",
    "PING",
    "PSUBSCRIBE",
    "PSYNC",
    "PUBLISH",
    "PUNSUBSCRIBE",
    "QUIT",
    "RANDOMKEY",
    "READONLY",
    "READWRITE",
    "REPLCONF",
    "REPLICAOF",
    "RESET",
    "ROLE",
    "SAVE",
    "SCAN",
    "SELECT",
    "SHUTDOWN",
    "SLAVEOF",
    "SPUBLISH",
    "SSUBSCRIBE",
    "SUBSCRIBE",
    "SUNSUBSCRIBE",
    "SWAPDB",
    "SYNC",
    "TIME",
    "UNSUBSCRIBE",
    "UNWATCH",
    "WAIT",
    "WAITAOF",
    "ASKING",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL_RO",
];

/// Upper-cased command name with the subcommand of container commands.
pub(crate) fn name(items: &[String]) -> Option<String> {
    let first = items.first()?.to_ascii_uppercase();
    if first.is_empty() {
        return None;
    }
    if CONTAINERS.contains(&first.as_str()) {
        if let Some(sub) = items.get(1).filter(|s| !s.is_empty()) {
            return Some(format!("{first} {}", sub.to_ascii_uppercase()));
        }
    }
    Some(first)
}

/// The key a command operates on, when it has one and it is among the kept arguments.
pub(crate) fn key(items: &[String]) -> Option<String> {
    // Command names are short: compare upper-cased on the stack.
    let mut buf = [0u8; 24];
    let raw = items.first()?.as_bytes();
    let first = match buf.get_mut(..raw.len()) {
        Some(b) => {
            b.copy_from_slice(raw);
            b.make_ascii_uppercase();
            std::str::from_utf8(b).unwrap_or("")
        }
        None => "",
    };
    let at = |i: usize| items.get(i).filter(|s| !s.is_empty()).cloned();
    // `numkeys key...` forms: the key follows the count when the count is not zero.
    let after_numkeys = |i: usize| {
        let n: u64 = items.get(i)?.parse().ok()?;
        if n == 0 {
            None
        } else {
            at(i + 1)
        }
    };
    match first {
        f if NO_KEY.contains(&f) => None,
        "EVAL" | "EVALSHA" | "FCALL" => after_numkeys(2),
        "ZUNION" | "ZINTER" | "ZDIFF" | "SINTERCARD" | "ZINTERCARD" | "LMPOP" | "ZMPOP" => {
            after_numkeys(1)
        }
        "BLMPOP" | "BZMPOP" => after_numkeys(2),
        "BITOP" => at(2),
        "MIGRATE" => at(3),
        "XREAD" | "XREADGROUP" => {
            let i = items
                .iter()
                .position(|s| s.eq_ignore_ascii_case("STREAMS"))?;
            at(i + 1)
        }
        "OBJECT" | "XINFO" | "XGROUP" => at(2),
        "MEMORY"
            if items
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case("USAGE")) =>
        {
            at(2)
        }
        f if CONTAINERS.contains(&f) => None,
        _ => at(1),
    }
}

/// `CLIENT REPLY ON|OFF|SKIP` switches whether the server answers the commands that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyMode {
    On,
    Off,
    /// The command after `CLIENT REPLY SKIP` gets no reply.
    Skip,
}

/// Applies a command to the reply mode; returns whether the command itself gets a reply.
pub(crate) fn apply_reply_mode(mode: &mut ReplyMode, items: &[String]) -> bool {
    let is_reply = items.len() >= 3
        && items[0].eq_ignore_ascii_case("CLIENT")
        && items[1].eq_ignore_ascii_case("REPLY");
    if is_reply {
        let arg = items[2].to_ascii_uppercase();
        match (arg.as_str(), *mode) {
            // ON always answers (it is how a client leaves OFF).
            ("ON", _) => {
                *mode = ReplyMode::On;
                return true;
            }
            ("OFF", _) => {
                *mode = ReplyMode::Off;
                return false;
            }
            // SKIP while OFF changes nothing; otherwise the SKIP itself is not answered.
            ("SKIP", ReplyMode::Off) => return false,
            ("SKIP", _) => {
                *mode = ReplyMode::Skip;
                return false;
            }
            _ => {}
        }
    }
    match *mode {
        ReplyMode::On => true,
        ReplyMode::Off => false,
        ReplyMode::Skip => {
            *mode = ReplyMode::On;
            false
        }
    }
}

/// Pub/sub message kinds that a server pushes without a request.
pub(crate) fn is_pubsub_message(kind: &str) -> bool {
    ["message", "pmessage", "smessage"]
        .iter()
        .any(|k| kind.eq_ignore_ascii_case(k))
}

/// Subscription confirmations: the first one answers the (un)subscribe command, further ones
/// (one per channel) are messages.
pub(crate) fn is_subscription_reply(kind: &str) -> bool {
    [
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
    ]
    .iter()
    .any(|k| kind.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(name(&v(&["get", "k"])).as_deref(), Some("GET"));
        assert_eq!(
            name(&v(&["client", "setname", "x"])).as_deref(),
            Some("CLIENT SETNAME")
        );
        assert_eq!(key(&v(&["get", "k"])).as_deref(), Some("k"));
        assert_eq!(key(&v(&["publish", "ch", "m"])), None);
        assert_eq!(key(&v(&["eval", "s", "1", "k"])).as_deref(), Some("k"));
        assert_eq!(key(&v(&["eval", "s", "0"])), None);
        assert_eq!(
            key(&v(&["xread", "count", "1", "streams", "s", "0"])).as_deref(),
            Some("s")
        );
        assert_eq!(key(&v(&["object", "encoding", "k"])).as_deref(), Some("k"));
        assert_eq!(key(&v(&["client", "list"])), None);
    }

    #[test]
    fn reply_modes() {
        let mut m = ReplyMode::On;
        assert!(apply_reply_mode(&mut m, &v(&["PING"])));
        assert!(!apply_reply_mode(&mut m, &v(&["CLIENT", "REPLY", "SKIP"])));
        assert!(!apply_reply_mode(&mut m, &v(&["PING"])));
        assert!(apply_reply_mode(&mut m, &v(&["PING"])));
        assert!(!apply_reply_mode(&mut m, &v(&["CLIENT", "REPLY", "OFF"])));
        assert!(!apply_reply_mode(&mut m, &v(&["CLIENT", "REPLY", "SKIP"])));
        assert!(apply_reply_mode(&mut m, &v(&["CLIENT", "REPLY", "ON"])));
        assert!(apply_reply_mode(&mut m, &v(&["PING"])));
    }
}
