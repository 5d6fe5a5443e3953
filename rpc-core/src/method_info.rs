//! A description of the methods a service declares, for tooling (documentation, code generators, tests).

/// One method of a service declared with `#[birpc::rpc]`, as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The wire name (with its namespace).
    pub name: &'static str,
    /// Other wire names that reach the same method.
    pub aliases: &'static [&'static str],
    /// Whether it is a notification (no answer) rather than a request.
    pub notification: bool,
    /// How its typed client sends the params; the server accepts both forms.
    pub params_style: ParamsStyle,
    /// Its params in order (a `Context` argument is not one: it never travels).
    pub params: &'static [ParamInfo],
    /// The Rust type of its result, as written (`()` for none); for a stream method, of its items.
    pub result: &'static str,
    /// Whether it is a stream method: it answers with a stream of `result` items (`docs/streams.md`).
    pub stream: bool,
    /// The Rust type of its own error, as written, if it returns a `Result`.
    pub error: Option<&'static str>,
    /// Its documentation comment.
    pub docs: &'static str,
}

/// One param of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamInfo {
    /// Its name (the key in the named form).
    pub name: &'static str,
    /// Its Rust type, as written; for an upload, the type of its items.
    pub ty: &'static str,
    /// Whether it is an upload: a stream of items the caller sends while the call runs.
    pub upload: bool,
}

/// How a typed client sends params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamsStyle {
    /// As an array, by position.
    #[default]
    Positional,
    /// As an object, by name.
    Named,
}
