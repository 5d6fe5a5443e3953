//! A crate that re-exports birpc under another path names it with `crate = "..."`; the generated code
//! compiles without warnings even when they are denied.
#![deny(warnings, missing_docs, unused)]

mod reexport {
    pub use birpc as inner;
}

/// A service whose generated code reaches birpc through `crate::reexport::inner`.
#[birpc::rpc(crate = "crate::reexport::inner")]
pub trait Service {
    /// Takes many params, of many kinds, with a raw identifier among them.
    #[allow(clippy::too_many_arguments)]
    async fn many(
        &self,
        a: u8,
        b: u16,
        c: u32,
        d: u64,
        e: i8,
        f: i16,
        g: i32,
        h: i64,
        i: String,
        j: Vec<String>,
        k: Option<bool>,
        l: (u8, u8),
        m: std::collections::BTreeMap<String, u32>,
        n: f64,
        o: char,
        p: Option<String>,
        r#type: String,
    ) -> usize;
    /// Takes nothing, returns nothing.
    async fn nothing(&self);
    /// Fails with a ready-made error object.
    async fn raw_error(&self) -> Result<(), reexport::inner::ErrorObject>;
    /// Has a default body.
    async fn defaulted(&self) -> u8 {
        7
    }
    /// A notification without params, sent by name.
    #[rpc(notification, params = "named")]
    async fn ping(&self);
}

fn main() {
    assert_eq!(ServiceMethods::TYPE_PARAM_NAME, "type");
    assert_eq!(ServiceMethods::all().len(), 5);
    assert_eq!(ServiceMethods::all()[0].params.len(), 17);
}

impl ServiceMethods {
    /// The wire name of the raw-identifier param.
    const TYPE_PARAM_NAME: &'static str = ServiceMethods::all()[0].params[16].name;
}
