//! The trait to implement: each `async fn` becomes a method returning `impl Future + Send` (Rust's own async
//! methods in traits, so an `impl` needs no attribute and its futures are not boxed), with `into_router`
//! and an `Arc` forwarding impl (so a shared implementation is a service too).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, TraitItem};

use crate::model::{Arg, Method, Output, Service};

pub(crate) fn service_trait(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let mut item = service.item.clone();
    for trait_item in &mut item.items {
        if let TraitItem::Fn(function) = trait_item {
            send_future(function);
        }
    }
    item.colon_token.get_or_insert_with(Default::default);
    item.supertraits.push(syn::parse_quote!(::core::marker::Send));
    item.supertraits.push(syn::parse_quote!(::core::marker::Sync));
    item.supertraits.push(syn::parse_quote!('static));
    let registrations = service.methods.iter().map(|method| registration(method, &private));
    let aliases = service.methods.iter().flat_map(|method| {
        method.aliases.iter().map(move |(alias, _)| {
            let name = &method.wire_name;
            quote!(.alias(#alias, #name))
        })
    });
    let into_router: TraitItem = syn::parse_quote! {
        /// Turns this implementation into a router exporting every method of the service, to give to a
        /// server (per connection) or a client. Merge several services with `Router::merge`.
        fn into_router(self) -> #private::Router
        where
            Self: ::core::marker::Sized,
        {
            let __birpc_this = ::std::sync::Arc::new(self);
            #private::Router::new()
                #(#registrations)*
                #(#aliases)*
        }
    };
    item.items.push(into_router);
    let forwarding = forwarding_impl(service);
    // Each method's own error type, checked where it is written (a missing derive is reported there).
    let error_checks = service.methods.iter().filter_map(|method| match &method.output {
        Output::Result { err, .. } | Output::Stream { err: Some(err), .. } => {
            Some(quote_spanned!(err.span()=> const _: fn() = #private::method_error::<#err>;))
        }
        _ => None,
    });
    quote! {
        #item
        #forwarding
        #(#error_checks)*
    }
}

/// `.method_raw(name, handler)` for one method: read the params by position or by name, call, encode.
fn registration(method: &Method, private: &TokenStream) -> TokenStream {
    let wire = &method.wire_name;
    let ident = method.ident();
    let names = method.params().map(|p| &p.name);
    let decode = method.params().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        match &p.upload {
            // An upload's parameter carries its stream id; binding it grants the caller credit.
            Some(item) => quote! {
                let #ident: #ty = __birpc_ctx.upload::<#item>(__birpc_reader.arg::<#private::UploadId>()?)?;
            },
            None => quote!(let #ident: #ty = __birpc_reader.arg()?;),
        }
    });
    let reader_mut = (method.params().count() > 0).then(|| quote!(mut));
    let call_args = method.args.iter().map(|arg| match arg {
        Arg::Context(_) => quote!(&__birpc_ctx),
        Arg::Param(p) => {
            let ident = &p.ident;
            quote!(#ident)
        }
    });
    let invoke = quote!(__birpc_service.#ident(#(#call_args),*).await);
    let encode = quote! {
        |error| {
            use #private::EncodeError as _;
            (&&&#private::Encoding(&error)).encode_error()
        }
    };
    let register = match &method.output {
        Output::Stream { .. } => quote!(stream_raw),
        _ => quote!(method_raw),
    };
    let outcome = match &method.output {
        Output::Stream { fallible, .. } => {
            let opened = if *fallible {
                quote!(#invoke.map_err(#encode)?)
            } else {
                quote!(#invoke)
            };
            quote! {
                let __birpc_items = #opened;
                ::core::result::Result::Ok::<_, #private::ErrorObject>(
                    #private::StreamExt::map(__birpc_items, |item| item.map_err(#encode)),
                )
            }
        }
        Output::Unit => quote! {
            #invoke;
            ::core::result::Result::Ok::<(), #private::ErrorObject>(())
        },
        Output::Value(_) => quote!(::core::result::Result::Ok::<_, #private::ErrorObject>(#invoke)),
        Output::Result { .. } => quote! {
            match #invoke {
                ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
                ::core::result::Result::Err(error) => {
                    use #private::EncodeError as _;
                    ::core::result::Result::Err((&&&#private::Encoding(&error)).encode_error())
                }
            }
        },
    };
    quote! {
        .#register(#wire, {
            let __birpc_service = ::std::sync::Arc::clone(&__birpc_this);
            move |__birpc_ctx: #private::Context, __birpc_params: #private::Params| {
                let __birpc_service = ::std::sync::Arc::clone(&__birpc_service);
                async move {
                    let #reader_mut __birpc_reader = __birpc_params.reader(&[#(#names),*])?;
                    #(#decode)*
                    __birpc_reader.finish()?;
                    #outcome
                }
            }
        })
    }
}

/// `impl Trait for Arc<T>`, forwarding every method, so a shared implementation serves too.
fn forwarding_impl(service: &Service) -> TokenStream {
    let trait_ident = &service.item.ident;
    let target = format_ident!("__BirpcService");
    let methods = service.methods.iter().map(|method| {
        let ident = method.ident();
        let output = &method.item.sig.output;
        let inputs = method.item.sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        });
        let params = inputs.map(|typed| {
            let ty = &typed.ty;
            let ident = arg_ident(method, typed);
            quote!(#ident: #ty)
        });
        let args = method.args.iter().map(|arg| match arg {
            Arg::Context(ident) => ident,
            Arg::Param(p) => &p.ident,
        });
        let output = future_of(output, ident.span());
        quote! {
            fn #ident(&self, #(#params),*) #output {
                #target::#ident(&**self, #(#args),*)
            }
        }
    });
    quote! {
        impl<#target: #trait_ident + ?::core::marker::Sized> #trait_ident for ::std::sync::Arc<#target> {
            #(#methods)*
        }
    }
}

/// Turns `async fn m(..) -> T` into `fn m(..) -> impl Future<Output = T> + Send`, a default body into an
/// `async move` block: every implementation's futures must be `Send`, which `async fn` in a trait cannot
/// say. An `impl` may still write `async fn` (Rust checks its future against the bound there).
///
/// As with `async fn`, every parameter moves into the future (a default body rebinds each one first, so
/// one it does not use still lives until the future ends), and a `mut` binding moves into the body: a
/// method without a body cannot have one.
fn send_future(function: &mut syn::TraitItemFn) {
    let Some(asyncness) = function.sig.asyncness.take() else {
        return;
    };
    function.sig.output = future_of(&function.sig.output, function.sig.ident.span());
    let mut rebind = Vec::new();
    for input in &mut function.sig.inputs {
        if let FnArg::Typed(typed) = input
            && let syn::Pat::Ident(pat) = &mut *typed.pat
        {
            let mutability = pat.mutability.take();
            let ident = &pat.ident;
            rebind.push(quote!(let #mutability #ident = #ident;));
        }
    }
    if let Some(body) = function.default.take() {
        function.default = Some(syn::parse_quote_spanned! {asyncness.span=>
            { async move { #(#rebind)* #body } }
        });
    }
}

/// `-> impl Future<Output = T> + Send` for `-> T` (or for no return type, `()`, spanned at `fallback`).
fn future_of(output: &syn::ReturnType, fallback: proc_macro2::Span) -> syn::ReturnType {
    let ty: syn::Type = match output {
        syn::ReturnType::Default => syn::parse_quote_spanned!(fallback=> ()),
        syn::ReturnType::Type(_, ty) => (**ty).clone(),
    };
    syn::parse_quote_spanned! {ty.span()=>
        -> impl ::core::future::Future<Output = #ty> + ::core::marker::Send
    }
}

/// The identifier of a typed argument (validated to be a plain name).
fn arg_ident<'a>(method: &'a Method, typed: &'a syn::PatType) -> &'a syn::Ident {
    match &*typed.pat {
        syn::Pat::Ident(pat) => &pat.ident,
        // Validation rejected every other pattern; fall back to the method's name for the impossible case.
        _ => method.ident(),
    }
}
