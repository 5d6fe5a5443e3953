//! The typed client: one method per service method, the same arguments, typed results and errors.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Index;

use crate::attrs::ParamsStyle;
use crate::model::{Method, Output, Service};

pub(crate) fn client(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let client = format_ident!("{}Client", trait_ident);
    let doc = format!(
        "A typed client of [`{trait_ident}`]: calls the service on the other side of a connection.\n\n\
         Build it from any `PeerHandle`: a client's connection, or, in a handler, the caller's \
         (`{client}::new(ctx.peer().clone())`), to call back a service the other side exports."
    );
    let methods = service
        .methods
        .iter()
        .map(|method| client_method(method, vis, &private));
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            peer: #private::PeerHandle,
        }

        impl #client {
            /// A client calling through `peer`.
            #vis fn new(peer: #private::PeerHandle) -> Self {
                Self { peer }
            }

            /// The handle this client calls through.
            #vis fn peer(&self) -> &#private::PeerHandle {
                &self.peer
            }

            #(#methods)*
        }

        impl ::core::convert::From<#private::PeerHandle> for #client {
            fn from(peer: #private::PeerHandle) -> Self {
                Self::new(peer)
            }
        }
    }
}

fn client_method(method: &Method, vis: &syn::Visibility, private: &TokenStream) -> TokenStream {
    let ident = method.ident();
    let wire = &method.wire_name;
    let docs = method.item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let params = method.params().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        match &p.upload {
            Some(item) => quote!(#ident: impl #private::Stream<Item = #item> + ::core::marker::Send + 'static),
            None => quote!(#ident: #ty),
        }
    });
    let encoded = params_expr(method, private);
    let decode_as = |err: &syn::Type| {
        quote!(|error| {
            use #private::DecodeError as _;
            (&&#private::Decoding::<#err>::new()).decode_error(error)
        })
    };
    if let Output::Stream { item, err, .. } = &method.output {
        let err = err.clone().unwrap_or_else(|| syn::parse_quote!(#private::ErrorObject));
        let decode = decode_as(&err);
        return quote! {
            #(#docs)*
            ///
            /// A stream method: the subscription's items come as a `Stream`; dropping it cancels the stream.
            #vis fn #ident(&self, #(#params),*) -> #private::Subscribe<#item, #err> {
                self.peer.subscribe(#wire, #encoded).with_errors(#decode)
            }
        };
    }
    // Uploads start before the call (their ids go in its params) and live as long as it.
    let uploads: Vec<_> = method
        .params()
        .filter(|p| p.upload.is_some())
        .map(|p| &p.ident)
        .collect();
    if method.notification {
        return quote! {
            #(#docs)*
            ///
            /// A notification: returns once it is queued for sending; there is no answer.
            #vis async fn #ident(&self, #(#params),*) -> ::core::result::Result<(), #private::CallError> {
                self.peer.notify(#wire, #encoded).await
            }
        };
    }
    let (ok, error, decode) = match &method.output {
        Output::Unit => (quote!(()), quote!(::core::convert::Infallible), quote!(|error| error)),
        Output::Value(ty) => (quote!(#ty), quote!(::core::convert::Infallible), quote!(|error| error)),
        Output::Result { ok, err } => (quote!(#ok), quote!(#err), decode_as(err)),
        Output::Stream { .. } => unreachable!("handled above"),
    };
    if uploads.is_empty() {
        return quote! {
            #(#docs)*
            #vis fn #ident(&self, #(#params),*) -> #private::TypedCall<#ok, #error> {
                #private::TypedCall::new(self.peer.call(#wire, #encoded), #decode)
            }
        };
    }
    let start_uploads = uploads.iter().map(|upload| {
        quote! {
            let #upload = match self.peer.upload(#wire, #upload) {
                ::core::result::Result::Ok(upload) => upload,
                ::core::result::Result::Err(error) => return #private::TypedCall::failed(error, __birpc_decode),
            };
        }
    });
    quote! {
        #(#docs)*
        #vis fn #ident(&self, #(#params),*) -> #private::TypedCall<#ok, #error> {
            let __birpc_decode: fn(#private::CallError) -> #private::CallError<#error> = #decode;
            #(#start_uploads)*
            #private::TypedCall::new(self.peer.call(#wire, #encoded), __birpc_decode)
                #(.holding(#uploads))*
        }
    }
}

/// The params, borrowed into a value that serializes as an array (by position) or an object (by name).
fn params_expr(method: &Method, private: &TokenStream) -> TokenStream {
    let params: Vec<_> = method.params().collect();
    if params.is_empty() {
        return quote!(());
    }
    let count = params.len();
    let types = params.iter().map(|p| match &p.upload {
        Some(_) => quote!(#private::OutgoingUpload),
        None => {
            let ty = &p.ty;
            quote!(#ty)
        }
    });
    let idents = params.iter().map(|p| &p.ident);
    let indexes = (0..count).map(Index::from);
    let body = match method.style {
        ParamsStyle::Positional => quote! {
            use #private::serde::ser::SerializeTuple as _;
            let mut __birpc_seq = __birpc_serializer.serialize_tuple(#count)?;
            #(__birpc_seq.serialize_element(self.#indexes)?;)*
            __birpc_seq.end()
        },
        ParamsStyle::Named => {
            let names = params.iter().map(|p| &p.name);
            quote! {
                use #private::serde::ser::SerializeStruct as _;
                let mut __birpc_map = __birpc_serializer.serialize_struct("params", #count)?;
                #(__birpc_map.serialize_field(#names, self.#indexes)?;)*
                __birpc_map.end()
            }
        }
    };
    quote! {{
        struct __BirpcParams<'__birpc>(#(&'__birpc #types),*);
        impl #private::serde::Serialize for __BirpcParams<'_> {
            fn serialize<__BirpcS: #private::serde::Serializer>(
                &self,
                __birpc_serializer: __BirpcS,
            ) -> ::core::result::Result<__BirpcS::Ok, __BirpcS::Error> {
                #body
            }
        }
        __BirpcParams(#(&#idents),*)
    }}
}
