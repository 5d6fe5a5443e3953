//! `<Trait>Methods`: the wire names of the service and a description of each method, for tooling.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::type_text;
use crate::attrs::ParamsStyle;
use crate::model::{Output, Service};

pub(crate) fn methods(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let methods = format_ident!("{}Methods", trait_ident);
    let doc = format!("The wire names of [`{trait_ident}`]'s methods, and a description of each, for tooling.");
    let consts = service.methods.iter().map(|method| {
        let name = format_ident!("{}", screaming_snake(&method.ident().to_string()));
        let wire = &method.wire_name;
        let doc = format!("`{wire}`");
        quote! {
            #[doc = #doc]
            #vis const #name: &'static str = #wire;
        }
    });
    let infos = service.methods.iter().map(|method| {
        let name = &method.wire_name;
        let aliases = method.aliases.iter().map(|(alias, _)| alias);
        let notification = method.notification;
        let style = match method.style {
            ParamsStyle::Positional => quote!(#private::ParamsStyle::Positional),
            ParamsStyle::Named => quote!(#private::ParamsStyle::Named),
        };
        let params = method.params().map(|p| {
            let name = &p.name;
            let ty = type_text(p.upload.as_ref().unwrap_or(&p.ty));
            let upload = p.upload.is_some();
            quote!(#private::ParamInfo { name: #name, ty: #ty, upload: #upload })
        });
        let stream = matches!(method.output, Output::Stream { .. });
        let (result, error) = match &method.output {
            Output::Unit => ("()".to_owned(), quote!(::core::option::Option::None)),
            Output::Value(ty) => (type_text(ty), quote!(::core::option::Option::None)),
            Output::Result { ok, err } => {
                let err = type_text(err);
                (type_text(ok), quote!(::core::option::Option::Some(#err)))
            }
            Output::Stream { item, err, .. } => {
                let err = err.as_ref().map_or_else(|| "ErrorObject".to_owned(), type_text);
                (type_text(item), quote!(::core::option::Option::Some(#err)))
            }
        };
        let docs = &method.docs;
        quote! {
            #private::MethodInfo {
                name: #name,
                aliases: &[#(#aliases),*],
                notification: #notification,
                params_style: #style,
                params: &[#(#params),*],
                result: #result,
                stream: #stream,
                error: #error,
                docs: #docs,
            }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #methods;

        impl #methods {
            #(#consts)*

            /// Every method, in the order of the trait.
            #vis const fn all() -> &'static [#private::MethodInfo] {
                &[#(#infos),*]
            }
        }
    }
}

/// `join_room` -> `JOIN_ROOM`, `getData` -> `GET_DATA`.
fn screaming_snake(name: &str) -> String {
    let name = name.trim_start_matches("r#");
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_uppercase());
    }
    out
}
