//! `<Trait>Methods::typescript()`: what TypeScript bindings of the service are rendered from (the names,
//! the TypeScript types of params and results, and the declarations of the types they use).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::attrs::ParamsStyle;
use crate::model::{Output, Service};

pub(crate) fn typescript(service: &Service) -> TokenStream {
    if !service.typescript {
        return TokenStream::new();
    }
    let krate = &service.krate;
    let ts = quote!(#krate::__private::typescript);
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let methods_ident = format_ident!("{}Methods", trait_ident);
    let name = trait_ident.to_string();
    let docs = &service.docs;
    let methods = service.methods.iter().map(|method| {
        let wire = &method.wire_name;
        let aliases = method.aliases.iter().map(|(alias, _)| alias);
        let ident = method.ident().to_string();
        let notification = method.notification;
        let named = method.style == ParamsStyle::Named;
        let params = method.params().map(|p| {
            let name = &p.name;
            match &p.upload {
                Some(item) => quote!(#ts::Param::upload::<#item>(#name)),
                None => {
                    let ty = &p.ty;
                    quote!(#ts::Param::of::<#ty>(#name))
                }
            }
        });
        let stream = matches!(method.output, Output::Stream { .. });
        let (result, error) = match &method.output {
            Output::Unit => (quote!(#ts::type_of::<()>()), quote!(::core::option::Option::None)),
            Output::Value(ty) => (quote!(#ts::type_of::<#ty>()), quote!(::core::option::Option::None)),
            Output::Result { ok, err } => (
                quote!(#ts::type_of::<#ok>()),
                quote!(::core::option::Option::Some(#ts::type_of::<#err>())),
            ),
            Output::Stream {
                item, err: Some(err), ..
            } => (
                quote!(#ts::type_of::<#item>()),
                quote!(::core::option::Option::Some(#ts::type_of::<#err>())),
            ),
            Output::Stream { item, err: None, .. } => {
                (quote!(#ts::type_of::<#item>()), quote!(::core::option::Option::None))
            }
        };
        let types = method
            .params()
            .map(|p| p.upload.as_ref().unwrap_or(&p.ty))
            .cloned()
            .chain(match &method.output {
                Output::Unit => Vec::new(),
                Output::Value(ty) => vec![ty.clone()],
                Output::Result { ok, err } => vec![ok.clone(), err.clone()],
                Output::Stream { item, err, .. } => std::iter::once(item.clone()).chain(err.clone()).collect(),
            });
        let docs = &method.docs;
        quote! {
            #(service.declare::<#types>();)*
            service.method(#ts::Method {
                name: #wire,
                aliases: &[#(#aliases),*],
                ident: #ident,
                notification: #notification,
                named: #named,
                params: ::std::vec![#(#params),*],
                result: #result,
                stream: #stream,
                error: #error,
                docs: #docs,
            });
        }
    });
    quote! {
        impl #methods_ident {
            /// What TypeScript bindings of the service are made from; render them with
            /// `birpc::typescript::Module`.
            #vis fn typescript() -> #ts::Service {
                let mut service = #ts::Service::new(#name, #docs);
                #(#methods)*
                service
            }
        }
    }
}
