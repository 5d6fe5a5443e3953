//! Generation: the service trait with its router, the typed client, the method list, and the descriptions
//! for TypeScript bindings and OpenRPC documents when asked for.

mod client;
mod methods;
mod openrpc;
mod service;
mod typescript;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::Service;

pub(crate) fn expand(service: &Service) -> TokenStream {
    let service_trait = service::service_trait(service);
    let client = client::client(service);
    let methods = methods::methods(service);
    let typescript = typescript::typescript(service);
    let openrpc = openrpc::openrpc(service);
    quote! {
        #service_trait
        #client
        #methods
        #typescript
        #openrpc
    }
}

/// A type as it reads in source, for documentation: `Vec<String>`, not `Vec < String >`.
pub(crate) fn type_text(ty: &syn::Type) -> String {
    let mut text = quote!(#ty).to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" , ", ", "),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
    ] {
        text = text.replace(from, to);
    }
    text
}
