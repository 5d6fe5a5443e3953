//! The `#[rpc]` attribute of birpc. Use it through `birpc::rpc`, whose documentation describes it.
//!
//! It works in three stages: `attrs` and `model` read the annotated trait into a validated model
//! (every mistake becomes a `syn::Error` at the offending token, all reported together), and `expand`
//! generates the service trait, the typed client and the method list from it. The generated code names
//! the runtime only through `<crate>::__private`, so it needs nothing but the `birpc` dependency.

mod attrs;
mod expand;
mod model;

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::Parser;

/// Declares a service as an annotated trait: generates the trait to implement (with `into_router`), a typed
/// client stub (`<Trait>Client`) and the list of its methods (`<Trait>Methods`). The `birpc` crate
/// documentation describes it with examples.
#[proc_macro_attribute]
pub fn rpc(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::Item>(input) {
        Ok(syn::Item::Trait(item)) => item,
        Ok(other) => {
            return syn::Error::new_spanned(other, "`#[rpc]` applies to a trait")
                .to_compile_error()
                .into();
        }
        Err(error) => return error.to_compile_error().into(),
    };
    let mut service_args = attrs::ServiceArgs::default();
    let parsed = syn::meta::parser(|meta| service_args.parse_meta(&meta)).parse(args);
    let service = parsed.and_then(|()| model::Service::new(service_args, item.clone()));
    match service {
        Ok(service) => expand::expand(&service).into(),
        Err(error) => {
            // The trait as written (without our attributes) keeps the rest of the program compiling, so the
            // mistakes above are the only messages.
            let item = model::strip(item);
            let error = error.to_compile_error();
            quote!(#item #error).into()
        }
    }
}

/// Not needed: an `impl` of an `#[rpc]` trait writes `async fn` as it is (the generated trait uses Rust's
/// own async methods). Kept so that code written for earlier versions, which put `#[birpc::async_trait]`
/// above such an `impl`, gets a message saying what to do instead of a mismatch of lifetimes.
#[proc_macro_attribute]
pub fn async_trait(_args: TokenStream, input: TokenStream) -> TokenStream {
    let message = "`#[birpc::async_trait]` is not needed: an `#[rpc]` trait is implemented with plain `async fn`; \
                   remove this attribute (for async traits of your own, use the `async-trait` crate)";
    let item = proc_macro2::TokenStream::from(input);
    let error = syn::Error::new(proc_macro2::Span::call_site(), message).to_compile_error();
    quote!(#error #item).into()
}
