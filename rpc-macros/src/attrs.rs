//! The arguments of `#[rpc(...)]`, on the trait and on its methods.

use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Attribute, LitStr, Path, Token};

/// `#[rpc(namespace = "...", crate = "...", typescript, openrpc)]` on the trait.
#[derive(Default)]
pub(crate) struct ServiceArgs {
    pub(crate) namespace: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    pub(crate) typescript: Option<syn::Ident>,
    pub(crate) openrpc: Option<syn::Ident>,
}

impl ServiceArgs {
    /// Parses one `key = value` of the trait's attribute.
    pub(crate) fn parse_meta(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("namespace") {
            let namespace: LitStr = meta.value()?.parse()?;
            if namespace.value().is_empty() {
                return Err(syn::Error::new(namespace.span(), "the namespace cannot be empty"));
            }
            set(&mut self.namespace, namespace, meta)
        } else if meta.path.is_ident("crate") {
            let path: LitStr = meta.value()?.parse()?;
            set(&mut self.krate, path.parse::<Path>()?, meta)
        } else if meta.path.is_ident("typescript") {
            let ident = meta
                .path
                .get_ident()
                .cloned()
                .ok_or_else(|| meta.error("expected `typescript`"))?;
            set(&mut self.typescript, ident, meta)
        } else if meta.path.is_ident("openrpc") {
            let ident = meta
                .path
                .get_ident()
                .cloned()
                .ok_or_else(|| meta.error("expected `openrpc`"))?;
            set(&mut self.openrpc, ident, meta)
        } else {
            Err(meta.error(
                "unknown key; `#[rpc]` on a trait takes `namespace = \"...\"`, `crate = \"...\"`, `typescript` and \
                 `openrpc`",
            ))
        }
    }
}

/// How a typed client sends a method's params.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ParamsStyle {
    #[default]
    Positional,
    Named,
}

/// `#[rpc(name = "...", aliases = [...], notification, params = "...")]` on a method.
#[derive(Default)]
pub(crate) struct MethodArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) aliases: Vec<LitStr>,
    pub(crate) notification: Option<syn::Ident>,
    pub(crate) params: Option<(ParamsStyle, LitStr)>,
}

impl MethodArgs {
    /// Reads every `#[rpc(...)]` among `attrs`.
    pub(crate) fn from_attrs(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut args = MethodArgs::default();
        for attr in attrs.iter().filter(|a| is_rpc(a)) {
            attr.parse_nested_meta(|meta| args.parse_meta(&meta))?;
        }
        Ok(args)
    }

    fn parse_meta(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            set(&mut self.name, name, meta)
        } else if meta.path.is_ident("aliases") {
            if !self.aliases.is_empty() {
                return Err(meta.error("`aliases` is given twice"));
            }
            self.aliases = parse_list(meta.value()?)?;
            Ok(())
        } else if meta.path.is_ident("notification") {
            let ident = meta
                .path
                .get_ident()
                .cloned()
                .ok_or_else(|| meta.error("expected `notification`"))?;
            set(&mut self.notification, ident, meta)
        } else if meta.path.is_ident("params") {
            let style: LitStr = meta.value()?.parse()?;
            let parsed = match style.value().as_str() {
                "positional" => ParamsStyle::Positional,
                "named" => ParamsStyle::Named,
                _ => return Err(syn::Error::new(style.span(), "expected \"positional\" or \"named\"")),
            };
            set(&mut self.params, (parsed, style), meta)
        } else {
            Err(meta.error(
                "unknown key; `#[rpc]` on a method takes `name = \"...\"`, `aliases = [...]`, `notification` and \
                 `params = \"positional\" | \"named\"`",
            ))
        }
    }
}

/// Whether `attr` is one of ours.
pub(crate) fn is_rpc(attr: &Attribute) -> bool {
    attr.path().is_ident("rpc")
}

fn set<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error("this key is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// `["a", "b"]`.
fn parse_list(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::bracketed!(content in input);
    Ok(content
        .parse_terminated(<LitStr as syn::parse::Parse>::parse, Token![,])?
        .into_iter()
        .collect())
}
