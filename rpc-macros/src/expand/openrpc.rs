//! `<Trait>Methods::openrpc()`: what OpenRPC and AsyncAPI documents of the service are rendered from (the
//! names, and the JSON Schemas of params, results and errors, generated with `schemars`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{Output, Service};

pub(crate) fn openrpc(service: &Service) -> TokenStream {
    if !service.openrpc {
        return TokenStream::new();
    }
    let krate = &service.krate;
    let openrpc = quote!(#krate::__private::openrpc);
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let methods_ident = format_ident!("{}Methods", trait_ident);
    let name = trait_ident.to_string();
    let docs = &service.docs;
    let methods = service.methods.iter().map(|method| {
        let wire = &method.wire_name;
        let method_docs = &method.docs;
        let aliases = method.aliases.iter().map(|(alias, _)| quote!(.alias(#alias)));
        // Each type's `JsonSchema` bound is checked at the type as written, so a missing derive points there.
        let params = method.params().map(|p| {
            let name = &p.name;
            match &p.upload {
                Some(item) => quote_spanned!(item.span()=> .param(#openrpc::Param::upload::<#item>(#name))),
                None => {
                    let ty = &p.ty;
                    quote_spanned!(ty.span()=> .param(#openrpc::Param::of::<#ty>(#name)))
                }
            }
        });
        let notification = method.notification.then(|| quote!(.notification()));
        let (output, error) = match &method.output {
            Output::Unit => (None, None),
            Output::Value(ty) => (Some(quote_spanned!(ty.span()=> .returns::<#ty>())), None),
            Output::Result { ok, err } => (Some(quote_spanned!(ok.span()=> .returns::<#ok>())), Some(err.clone())),
            Output::Stream { item, err, .. } => (Some(quote_spanned!(item.span()=> .stream::<#item>())), err.clone()),
        };
        let error = error.map(|err| {
            let describe = quote_spanned!(err.span()=> (&&#openrpc::ErrorType::<#err>::new()).describe(__birpc_method));
            quote! {
                let __birpc_method = {
                    use #openrpc::DescribeError as _;
                    #describe
                };
            }
        });
        quote! {
            let __birpc_method = #openrpc::Method::new(#wire)
                .docs(#method_docs)
                #(#aliases)*
                #(#params)*
                #output
                #notification;
            #error
            __birpc_service = __birpc_service.method(__birpc_method);
        }
    });
    quote! {
        impl #methods_ident {
            /// What OpenRPC and AsyncAPI documents of the service are made from, with the JSON Schemas of
            /// its params, results and errors; add it to a `birpc::openrpc::Document` (as a service the
            /// server exports, or one its clients export).
            #vis fn openrpc() -> #openrpc::Service {
                let mut __birpc_service = #openrpc::Service::new(#name, #docs);
                #(#methods)*
                __birpc_service
            }
        }
    }
}
