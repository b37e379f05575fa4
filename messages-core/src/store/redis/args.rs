//! What the store sends, written straight into one command's buffer: keys made in place
//! (no `String` per key) and script calls as one `EVALSHA`. Redis's `ScriptInvocation`
//! keeps each key and argument in a `Vec` of its own and copies them all into a command
//! when it is sent: 24 of the 77 `malloc` calls per request of a Redis flash pair that
//! this saves (BENCHMARKS.md, "After the eighth run").

use std::fmt;

use ::redis::aio::ConnectionLike;
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, RedisResult, RedisWrite, Script, ServerErrorKind, ToRedisArgs,
    ToSingleRedisArg,
};
use serde::Serialize;

/// A key of a session: `{namespace}:{<session>}`, then `:{view}` for a context's keys,
/// then a suffix (`;views`, `;seq`, `;leases`, …). The braces make the session a hash tag,
/// so all keys of a session live in one cluster slot.
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    pub(super) namespace: &'a str,
    pub(super) session: &'a str,
    pub(super) view: Option<&'a str>,
    pub(super) suffix: &'static str,
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{{{}}}", self.namespace, self.session)?;
        if let Some(view) = self.view {
            write!(f, ":{view}")?;
        }
        f.write_str(self.suffix)
    }
}

impl ToRedisArgs for Key<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        out.write_arg_fmt(self);
    }
}

impl ToSingleRedisArg for Key<'_> {}

/// A call of one of the store's scripts: `EVALSHA <sha1> <keys> KEYS… ARGV…`, loaded
/// (`SCRIPT LOAD`) and sent again when the server does not have the script.
pub(super) struct Eval<'a> {
    script: &'a Script,
    cmd: Cmd,
}

impl<'a> Eval<'a> {
    /// A call of `script` on `keys`; the arguments follow with [`arg`](Eval::arg).
    pub(super) fn new(script: &'a Script, keys: &[Key<'_>]) -> Eval<'a> {
        let mut cmd = Cmd::with_capacity(keys.len() + 12, 64 * keys.len() + 192);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(key);
        }
        Eval { script, cmd }
    }

    /// Appends an argument (`ARGV[i]`).
    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Appends `value`'s text as an argument, written in place.
    pub(super) fn arg_display(&mut self, value: impl fmt::Display) -> &mut Self {
        self.cmd.write_arg_fmt(value);
        self
    }

    /// Appends `value`'s JSON as an argument, written in place.
    ///
    /// # Errors
    ///
    /// `serde_json`'s, when `value` cannot be serialized; the call is then unusable.
    pub(super) fn arg_json(&mut self, value: &impl Serialize) -> serde_json::Result<&mut Self> {
        serde_json::to_writer(self.cmd.writer_for_next_arg(), value)?;
        Ok(self)
    }

    /// The `EVALSHA` command, to copy into a pipeline (the call may be sent again alone).
    pub(super) fn cmd(&self) -> &Cmd {
        &self.cmd
    }

    /// The `EVALSHA` command, to go into a pipeline.
    pub(super) fn into_cmd(self) -> Cmd {
        self.cmd
    }

    /// Sends the call; if the server does not have the script, loads it and sends the
    /// call again.
    pub(super) async fn invoke_async<T: FromRedisValue>(
        &self,
        con: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(con).await?;
                self.cmd.query_async(con).await
            }
            answer => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The command is the one redis's `ScriptInvocation` sends, byte for byte.
    #[test]
    fn an_eval_is_what_a_script_invocation_sends() {
        let script = Script::new("return {KEYS[1], ARGV[2]}");
        let keys = [
            Key {
                namespace: "ns",
                session: "abc",
                view: Some("app::inbox"),
                suffix: "",
            },
            Key {
                namespace: "ns",
                session: "abc",
                view: None,
                suffix: ";views",
            },
        ];
        let mut eval = Eval::new(&script, &keys);
        eval.arg("add")
            .arg(100usize)
            .arg_display(0xbeef_u32)
            .arg_json(&serde_json::json!({"a": [1, "x"]}))
            .unwrap();
        let mut invocation = script.prepare_invoke();
        invocation
            .key("ns:{abc}:app::inbox")
            .key("ns:{abc};views")
            .arg("add")
            .arg(100usize)
            .arg("48879")
            .arg(r#"{"a":[1,"x"]}"#);
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&invocation);
        let expected = pipe.cmd_iter().next().unwrap().get_packed_command();
        assert_eq!(
            String::from_utf8_lossy(&eval.cmd().get_packed_command()),
            String::from_utf8_lossy(&expected)
        );
    }
}
