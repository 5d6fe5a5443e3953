//! The service as understood from the annotated trait, validated: every mistake becomes a `syn::Error` at
//! the offending token, and all of them are reported together.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, Pat, Path, PathArguments, ReturnType, TraitItem, TraitItemFn,
    Type,
};

use crate::attrs::{MethodArgs, ParamsStyle, ServiceArgs, is_rpc};

/// Errors collected while reading the trait.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, spanned: impl Spanned, message: &str) {
        self.push(syn::Error::new(spanned.span(), message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Methods the generated trait defines itself; a service method cannot take these names.
const RESERVED_IDENTS: &[&str] = &["into_router"];

pub(crate) struct Service {
    /// The trait as written, without our `#[rpc]` attributes.
    pub(crate) item: ItemTrait,
    pub(crate) krate: Path,
    pub(crate) methods: Vec<Method>,
    /// Whether to generate TypeScript bindings.
    pub(crate) typescript: bool,
    /// Whether to generate the description OpenRPC and AsyncAPI documents are made from.
    pub(crate) openrpc: bool,
    pub(crate) docs: String,
}

pub(crate) struct Method {
    /// The method as written, without our `#[rpc]` attributes.
    pub(crate) item: TraitItemFn,
    pub(crate) docs: String,
    pub(crate) wire_name: String,
    /// Where the wire name comes from: the `name = "..."` literal, or the method's identifier.
    pub(crate) name_span: Span,
    /// Other wire names, each with the span of its literal.
    pub(crate) aliases: Vec<(String, Span)>,
    pub(crate) notification: bool,
    pub(crate) style: ParamsStyle,
    /// The arguments after `&self`, in order.
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
}

#[expect(clippy::large_enum_variant, reason = "a handful live while one trait is expanded")]
pub(crate) enum Arg {
    /// `&Context`: given by the peer, never on the wire.
    Context(Ident),
    Param(Param),
}

pub(crate) struct Param {
    pub(crate) ident: Ident,
    /// The name on the wire (the identifier without `r#`).
    pub(crate) name: String,
    pub(crate) ty: Type,
    /// For an upload parameter (`Upload<T>`): the item type `T`.
    pub(crate) upload: Option<Type>,
}

pub(crate) enum Output {
    Unit,
    Value(Type),
    Result {
        ok: Type,
        err: Type,
    },
    /// `ItemStream<T, E>`, or `Result<ItemStream<T, E>, E>`: a stream method (a download).
    Stream {
        item: Type,
        /// The items' error type (and the opening's); `None`: `ErrorObject`.
        err: Option<Type>,
        /// Whether opening the stream may fail (the method returns a `Result`).
        fallible: bool,
    },
}

impl Method {
    pub(crate) fn ident(&self) -> &Ident {
        &self.item.sig.ident
    }

    pub(crate) fn params(&self) -> impl Iterator<Item = &Param> {
        self.args.iter().filter_map(|arg| match arg {
            Arg::Param(param) => Some(param),
            Arg::Context(_) => None,
        })
    }
}

impl Service {
    /// Reads and checks the trait.
    pub(crate) fn new(args: ServiceArgs, mut item: ItemTrait) -> syn::Result<Self> {
        let mut errors = Errors::default();
        if !item.generics.params.is_empty() {
            errors.at(&item.generics, "an rpc service trait cannot be generic");
        }
        if let Some(where_clause) = &item.generics.where_clause {
            errors.at(where_clause, "an rpc service trait cannot have a where clause");
        }
        let namespace = args.namespace.map(|n| n.value());
        let mut methods = Vec::new();
        for trait_item in &mut item.items {
            match trait_item {
                TraitItem::Fn(function) => {
                    let method_args = MethodArgs::from_attrs(&function.attrs).unwrap_or_else(|e| {
                        errors.push(e);
                        MethodArgs::default()
                    });
                    function.attrs.retain(|a| !is_rpc(a));
                    if let Some(method) = read_method(function, method_args, namespace.as_deref(), &mut errors) {
                        methods.push(method);
                    }
                }
                other => errors.at(other, "an rpc service trait holds only `async fn` methods"),
            }
        }
        check_wire_names(&methods, &mut errors);
        errors.finish()?;
        let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::birpc));
        Ok(Service {
            docs: docs(&item.attrs),
            item,
            krate,
            methods,
            typescript: args.typescript.is_some(),
            openrpc: args.openrpc.is_some(),
        })
    }
}

/// The trait as written, without our attributes: what is emitted when the trait has errors, so that one
/// mistake gives one message.
pub(crate) fn strip(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(function) = trait_item {
            function.attrs.retain(|a| !is_rpc(a));
        }
    }
    item
}

fn read_method(
    function: &TraitItemFn,
    args: MethodArgs,
    namespace: Option<&str>,
    all_errors: &mut Errors,
) -> Option<Method> {
    let mut errors = Errors::default();
    let sig = &function.sig;
    for attr in &function.attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.at(
                attr,
                "rpc methods cannot be conditionally compiled: the router, client and method list cover every \
                 method; put methods that depend on a feature in an `#[rpc]` trait of their own",
            );
        }
    }
    if sig.asyncness.is_none() {
        errors.at(sig.fn_token, "rpc methods must be `async fn`");
    }
    if let Some(constness) = &sig.constness {
        errors.at(constness, "rpc methods cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety, "rpc methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "rpc methods cannot declare an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "rpc methods cannot be variadic");
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            "rpc methods cannot be generic: every call must decode into known types",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.at(where_clause, "rpc methods cannot have a where clause");
    }
    let ident_name = sig.ident.unraw().to_string();
    if RESERVED_IDENTS.contains(&ident_name.as_str()) {
        errors.at(&sig.ident, "this name is taken by a method the generated trait defines");
    }
    check_receiver(function, &mut errors);
    let args_list = read_args(function, &mut errors);
    let output = read_output(&sig.output, &mut errors);
    let uploads = args_list.iter().filter_map(|arg| match arg {
        Arg::Param(param) if param.upload.is_some() => Some(&param.ty),
        _ => None,
    });
    for upload in uploads {
        if args.notification.is_some() {
            errors.at(
                upload,
                "a notification cannot take an upload: the upload lives as long as its call",
            );
        } else if matches!(output, Output::Stream { .. }) {
            errors.at(upload, "a stream method cannot also take an upload");
        }
    }
    if let Some(notification) = &args.notification
        && !matches!(output, Output::Unit)
    {
        let span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => notification.span(),
        };
        errors.push(syn::Error::new(
            span,
            "a notification gets no answer, so it cannot return a value",
        ));
    }
    if let Err(error) = errors.finish() {
        all_errors.push(error);
        return None;
    }
    let qualify = |name: &str| match namespace {
        Some(namespace) => format!("{namespace}.{name}"),
        None => name.to_owned(),
    };
    let (wire_name, name_span) = match &args.name {
        Some(name) => (qualify(&name.value()), name.span()),
        None => (qualify(&ident_name), sig.ident.span()),
    };
    Some(Method {
        item: function.clone(),
        docs: docs(&function.attrs),
        wire_name,
        name_span,
        aliases: args.aliases.iter().map(|a| (qualify(&a.value()), a.span())).collect(),
        notification: args.notification.is_some(),
        style: args.params.map(|(style, _)| style).unwrap_or_default(),
        args: args_list,
        output,
    })
}

fn check_receiver(function: &TraitItemFn, errors: &mut Errors) {
    match function.sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            if receiver.reference.is_none() {
                errors.at(receiver.self_token, "rpc methods take `&self`, not `self` by value");
            } else if let Some(mutability) = &receiver.mutability {
                errors.at(
                    mutability,
                    "rpc methods take `&self`, not `&mut self`: a service is shared by concurrent calls",
                );
            } else if receiver.colon_token.is_some() {
                errors.at(&receiver.ty, "rpc methods take plain `&self`");
            }
        }
        _ => errors.at(&function.sig.ident, "rpc methods take `&self` as their first parameter"),
    }
}

fn read_args(function: &TraitItemFn, errors: &mut Errors) -> Vec<Arg> {
    let mut args = Vec::new();
    let mut context_seen = false;
    for input in &function.sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let Pat::Ident(pat) = &*typed.pat else {
            errors.at(
                &typed.pat,
                "rpc method parameters must be plain names: the name is the key of the param",
            );
            continue;
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            errors.at(&typed.pat, "rpc method parameters must be plain names");
            continue;
        }
        match &*typed.ty {
            Type::Reference(reference) if is_context(&reference.elem) => {
                if let Some(mutability) = &reference.mutability {
                    errors.at(mutability, "take the context as `&Context`");
                } else if context_seen {
                    errors.at(&typed.ty, "a method takes the context at most once");
                } else {
                    context_seen = true;
                    args.push(Arg::Context(pat.ident.clone()));
                }
            }
            Type::Reference(reference) => errors.push(syn::Error::new(
                reference.and_token.span,
                "rpc method parameters are decoded from the message and owned by the method: take `T`, not `&T` \
                 (only the context is taken by reference: `&Context`)",
            )),
            Type::ImplTrait(_) => errors.at(&typed.ty, "`impl Trait` parameters make the method generic"),
            ty if is_context(ty) => errors.at(ty, "take the context by reference: `&Context`"),
            ty => args.push(Arg::Param(Param {
                ident: pat.ident.clone(),
                name: pat.ident.unraw().to_string(),
                ty: ty.clone(),
                upload: match generic_args(ty, "Upload").as_deref() {
                    Some([item]) => Some((*item).clone()),
                    _ => None,
                },
            })),
        }
    }
    args
}

/// Whether `ty` names the per-call context (`Context`, `birpc::Context`, ...).
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Context" && last.arguments.is_none()),
        _ => false,
    }
}

/// The type arguments of `ty` when it is a path whose last segment is `name` (`Upload<T>`, say).
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last().filter(|last| last.ident == name)?;
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    Some(
        generics
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
    )
}

/// A stream method's output: `ItemStream<T>` or `ItemStream<T, E>`.
fn read_stream(ty: &Type, fallible: bool) -> Option<Output> {
    match generic_args(ty, "ItemStream")?.as_slice() {
        [item] => Some(Output::Stream {
            item: (*item).clone(),
            err: None,
            fallible,
        }),
        [item, err] => Some(Output::Stream {
            item: (*item).clone(),
            err: Some((*err).clone()),
            fallible,
        }),
        _ => None,
    }
}

fn read_output(output: &ReturnType, errors: &mut Errors) -> Output {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) => ty,
    };
    if let Some(stream) = read_stream(ty, false) {
        return stream;
    }
    if let Type::Tuple(tuple) = &**ty
        && tuple.elems.is_empty()
    {
        return Output::Unit;
    }
    let Type::Path(path) = &**ty else {
        return Output::Value((**ty).clone());
    };
    let Some(last) = path.path.segments.last().filter(|last| last.ident == "Result") else {
        return Output::Value((**ty).clone());
    };
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Output::Value((**ty).clone());
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, _] if read_stream(ok, true).is_some() => read_stream(ok, true).unwrap_or(Output::Unit),
        [ok, err] => Output::Result {
            ok: (*ok).clone(),
            err: (*err).clone(),
        },
        _ => {
            errors.at(
                ty,
                "write the error type out, as in `Result<T, MyError>`: it is sent to the caller, who decodes it",
            );
            Output::Unit
        }
    }
}

/// Every wire name (names and aliases, namespaced) is used once, and none is reserved.
fn check_wire_names(methods: &[Method], errors: &mut Errors) {
    let mut owners: HashMap<&str, &Ident> = HashMap::new();
    for method in methods {
        let names = std::iter::once((&method.wire_name, method.name_span))
            .chain(method.aliases.iter().map(|(name, span)| (name, *span)));
        for (name, span) in names {
            if let Some(owner) = owners.get(name.as_str()) {
                let message = if *owner == method.ident() {
                    format!("the wire name `{name}` is given twice to this method")
                } else {
                    format!("the wire name `{name}` is already used by `{owner}`")
                };
                errors.push(syn::Error::new(span, message));
                continue;
            }
            owners.insert(name, method.ident());
            if name.starts_with("rpc.") {
                errors.push(syn::Error::new(
                    span,
                    "names beginning with `rpc.` are reserved by JSON-RPC 2.0",
                ));
            } else if name.starts_with("$/") {
                errors.push(syn::Error::new(span, "names beginning with `$/` are reserved by birpc"));
            } else if name.is_empty() || name.ends_with('.') {
                errors.push(syn::Error::new(span, "a method name cannot be empty"));
            }
        }
    }
}

/// The documentation comment of an item, as one string.
fn docs(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    lines.join("\n")
}
