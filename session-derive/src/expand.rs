//! Code generation: the `SessionData` impl and the accessor trait, or, when
//! the input has errors, the errors plus stubs that keep the rest of the
//! crate from failing in a cascade.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::ast::{self, Container, Field};
use crate::attr::ContainerAttrs;
use crate::ctxt::Ctxt;
use crate::valid;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let cont = Container::from_ast(&mut cx, input);
    let Some(mut cont) = cont else {
        let stub = if ast::can_stub(input) {
            let krate = ContainerAttrs::crate_path(&input.attrs)
                .map_or_else(|| quote!(::sessionkit), |path| quote!(#path));
            stub_impl(&krate, input)
        } else {
            TokenStream::new()
        };
        return with_errors(cx, stub);
    };
    valid::check(&mut cx, &mut cont);
    let krate = cont
        .attrs
        .krate
        .as_ref()
        .map_or_else(|| quote!(::sessionkit), |path| quote!(#path));
    if cx.has_errors() {
        let mut stub = stub_impl(&krate, input);
        stub.extend(accessor_trait(&krate, &cont));
        return with_errors(cx, stub);
    }
    let mut out = session_data_impl(&krate, &cont);
    out.extend(accessor_trait(&krate, &cont));
    out.extend(field_assertions(&krate, &cont));
    match cx.check() {
        Ok(()) => out,
        Err(error) => error.into_compile_error(),
    }
}

fn with_errors(cx: Ctxt, stub: TokenStream) -> TokenStream {
    match cx.check() {
        Ok(()) => stub,
        Err(error) => {
            let mut out = error.into_compile_error();
            out.extend(stub);
            out
        }
    }
}

fn stored<'c, 'a>(cont: &'c Container<'a>) -> impl Iterator<Item = (usize, &'c Field<'a>)> {
    cont.fields
        .iter()
        .filter_map(|field| field.index.map(|index| (index, field)))
}

fn session_data_impl(krate: &TokenStream, cont: &Container<'_>) -> TokenStream {
    let ident = cont.ident;
    let p = quote!(#krate::__private);

    let infos = stored(cont).map(|(_, field)| {
        let name = &field.stored_name;
        let rust_name = &field.rust_name;
        let info = quote!(#p::FieldInfo::new(#name, #rust_name));
        if field.attrs.headers.is_empty() {
            info
        } else {
            let specs = field.attrs.headers.iter().map(|header| {
                let name = &header.name;
                let prefix = header
                    .prefix
                    .as_ref()
                    .map_or_else(String::new, syn::LitStr::value);
                quote!(#p::HeaderSpec::new(#name, #prefix))
            });
            quote!(#info.with_headers(&[#(#specs),*]))
        }
    });

    // The calls are spanned at the field's type so that a type that cannot
    // be stored is reported there.
    let encode = stored(cont).map(|(index, field)| {
        let member = field.ident;
        let ty = &field.ty;
        let call = quote_spanned!(field.original.ty.span()=>
            #p::encode_value::<#ty>(&self.#member, out)
        );
        quote!(#index => #call,)
    });
    let decode = stored(cont).map(|(index, field)| {
        let member = field.ident;
        let ty = &field.ty;
        let call = quote_spanned!(field.original.ty.span()=> #p::decode_value::<#ty>(bytes));
        quote!(#index => {
            self.#member = #call?;
            #p::Ok(())
        })
    });
    let reset = stored(cont).map(|(index, field)| {
        let member = field.ident;
        quote!(#index => self.#member = <Self as #p::Default>::default().#member,)
    });
    let header_value = stored(cont).map(|(index, field)| {
        let member = field.ident;
        let ty = &field.ty;
        if field.attrs.headers.is_empty() {
            quote!(#index => (&#p::HeaderProbe(&self.#member)).__sessionkit_header_value(),)
        } else {
            // A declared header must render: the bound error points at the type.
            let call = quote_spanned!(field.original.ty.span()=> <#ty as #p::ToHeaderValue>::to_header_value);
            quote!(#index => #call(&self.#member),)
        }
    });
    // The principal field's key; a type that cannot be one is reported at
    // the field's type.
    let principal = stored(cont)
        .find(|(_, field)| field.attrs.principal.is_some())
        .map(|(index, field)| {
            let member = field.ident;
            let ty = &field.ty;
            let render = quote_spanned!(field.original.ty.span()=>
                <#ty as #p::ToPrincipalKey>::to_principal_key
            );
            quote! {
                const PRINCIPAL: #p::Option<usize> = #p::Some(#index);

                fn principal_key(&self) -> #p::Option<#p::Cow<'_, str>> {
                    #render(&self.#member)
                }
            }
        });
    let header_capable = stored(cont).map(|(index, field)| {
        let ty = &field.ty;
        if field.attrs.headers.is_empty() {
            quote!(#index => (&#p::CapableProbe::<#ty>::new()).__sessionkit_header_capable(),)
        } else {
            quote!(#index => true,)
        }
    });

    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications, clippy::all, clippy::pedantic)]
        impl #p::SessionData for #ident {
            const FIELDS: &'static [#p::FieldInfo] = &[#(#infos),*];

            fn encode_field(
                &self,
                index: usize,
                out: &mut #p::Vec<u8>,
            ) -> #p::Result<(), #p::EncodeError> {
                match index {
                    #(#encode)*
                    _ => #p::Err(#p::EncodeError::no_field(index)),
                }
            }

            fn decode_field(
                &mut self,
                index: usize,
                bytes: &[u8],
            ) -> #p::Result<(), #p::DecodeError> {
                match index {
                    #(#decode)*
                    _ => #p::Err(#p::DecodeError::no_field(index)),
                }
            }

            fn reset_field(&mut self, index: usize) {
                match index {
                    #(#reset)*
                    _ => {}
                }
            }

            fn header_value(&self, index: usize) -> #p::Option<#p::Cow<'_, str>> {
                #[allow(unused_imports)]
                use #p::{HeaderFallback as _, HeaderViaTrait as _};
                match index {
                    #(#header_value)*
                    _ => #p::None,
                }
            }

            fn header_capable(index: usize) -> bool {
                #[allow(unused_imports)]
                use #p::{CapableFallback as _, CapableViaTrait as _};
                match index {
                    #(#header_capable)*
                    _ => false,
                }
            }

            #principal
        }
    }
}

/// An impl that compiles whatever the struct looks like, so that the real
/// error is the only one. The bounds are written higher-ranked so they are
/// not checked here (trivial bounds are unstable, rust-lang/rust#48214).
fn stub_impl(krate: &TokenStream, input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications, clippy::all, clippy::pedantic)]
        impl #p::SessionData for #ident
        where
            for<'__sessionkit> #ident: #p::Default + #p::Send + #p::Sync,
        {
            const FIELDS: &'static [#p::FieldInfo] = &[];

            fn encode_field(
                &self,
                index: usize,
                _: &mut #p::Vec<u8>,
            ) -> #p::Result<(), #p::EncodeError> {
                #p::Err(#p::EncodeError::no_field(index))
            }

            fn decode_field(&mut self, index: usize, _: &[u8]) -> #p::Result<(), #p::DecodeError> {
                #p::Err(#p::DecodeError::no_field(index))
            }

            fn reset_field(&mut self, _: usize) {}
        }
    }
}

fn accessor_trait(krate: &TokenStream, cont: &Container<'_>) -> TokenStream {
    let ident = cont.ident;
    let vis = cont.vis;
    let p = quote!(#krate::__private);
    let trait_ident = format_ident!("{}SessionExt", ident, span = ident.span());
    let struct_name = ident.to_string();

    let fields: Vec<_> = stored(cont).filter(|(_, f)| f.accessors).collect();
    let ret = return_type_param(&fields);

    let declarations = fields.iter().map(|(_, field)| {
        let ty = &field.ty;
        let [get, with, set, update, take, remove] = valid::accessor_names(field.ident);
        let name = &field.rust_name;
        let stored_as = if field.stored_name == field.rust_name {
            String::new()
        } else {
            format!(" (stored as `{}`)", field.stored_name)
        };
        let doc_get = format!("Reads `{name}`{stored_as} from the session: a clone of its value.");
        let doc_with = format!("Runs `f` on `{name}` without cloning it.");
        let doc_set = format!(
            "Sets `{name}`; only this field is marked changed and written at the next commit. \
             A blind write: when concurrent requests set it, the last one wins."
        );
        let doc_update = format!(
            "Changes `{name}` in place with `f`; only this field is marked changed. \
             Never lost to a concurrent request: if `{name}` changed in the store since this \
             request loaded it, `f` runs again at commit on the newer value, so it must be `Fn` \
             and compute only from its argument. Returns what `f` returned on this request's value."
        );
        let doc_take = format!(
            "Removes `{name}` from the session and returns its value; it reads as its default afterwards. \
             If a concurrent request changed it meanwhile, its newer value stays."
        );
        let doc_remove = format!(
            "Removes `{name}` from the session; it reads as its default afterwards and is deleted from the store at the next commit."
        );
        if let Some(inner) = &field.flash {
            let flash = valid::flash_setter(field.ident);
            let doc_flash = format!(
                "Sets the flash message `{name}` for the next request that takes it (a blind write: the last message set wins)."
            );
            let doc_take = format!(
                "Takes the flash message `{name}`: returns it and removes it from the store now, so exactly one \
                 request gets it (of two concurrent requests, the other gets `None`; see `Session::take_once`). \
                 When no message is set this costs no write."
            );
            return quote! {
                #[doc = #doc_get]
                #[must_use]
                fn #get(&self) -> #ty;
                #[doc = #doc_with]
                fn #with<#ret>(&self, f: impl #p::FnOnce(&#ty) -> #ret) -> #ret;
                #[doc = #doc_set]
                fn #set(&self, value: #ty);
                #[doc = #doc_update]
                fn #update<#ret>(&self, f: impl #p::Fn(&mut #ty) -> #ret + #p::Send + #p::Sync + 'static) -> #ret;
                #[doc = #doc_flash]
                fn #flash(&self, value: #inner);
                #[doc = #doc_take]
                fn #take(&self) -> impl #p::Future<Output = #p::Result<#ty, #p::SessionError>> + #p::Send + '_;
                #[doc = #doc_remove]
                fn #remove(&self);
            };
        }
        quote! {
            #[doc = #doc_get]
            #[must_use]
            fn #get(&self) -> #ty;
            #[doc = #doc_with]
            fn #with<#ret>(&self, f: impl #p::FnOnce(&#ty) -> #ret) -> #ret;
            #[doc = #doc_set]
            fn #set(&self, value: #ty);
            #[doc = #doc_update]
            fn #update<#ret>(&self, f: impl #p::Fn(&mut #ty) -> #ret + #p::Send + #p::Sync + 'static) -> #ret;
            #[doc = #doc_take]
            fn #take(&self) -> #ty;
            #[doc = #doc_remove]
            fn #remove(&self);
        }
    });

    let definitions = fields.iter().map(|(index, field)| {
        let ty = &field.ty;
        let member = field.ident;
        let [get, with, set, update, take, remove] = valid::accessor_names(field.ident);
        let key = quote! {
            #p::Field::<#ident, #ty>::new(#index, |data| &data.#member, |data| &mut data.#member)
        };
        if let Some(inner) = &field.flash {
            let flash = valid::flash_setter(field.ident);
            return quote! {
                fn #get(&self) -> #ty {
                    #p::Session::get(self, #key)
                }
                fn #with<#ret>(&self, f: impl #p::FnOnce(&#ty) -> #ret) -> #ret {
                    #p::Session::with(self, #key, f)
                }
                fn #set(&self, value: #ty) {
                    #p::Session::set(self, #key, value);
                }
                fn #update<#ret>(&self, f: impl #p::Fn(&mut #ty) -> #ret + #p::Send + #p::Sync + 'static) -> #ret {
                    #p::Session::update(self, #key, f)
                }
                fn #flash(&self, value: #inner) {
                    #p::Session::set(self, #key, #p::Some(value));
                }
                fn #take(&self) -> impl #p::Future<Output = #p::Result<#ty, #p::SessionError>> + #p::Send + '_ {
                    #p::Session::take_once(self, #key)
                }
                fn #remove(&self) {
                    #p::Session::remove(self, #key);
                }
            };
        }
        quote! {
            fn #get(&self) -> #ty {
                #p::Session::get(self, #key)
            }
            fn #with<#ret>(&self, f: impl #p::FnOnce(&#ty) -> #ret) -> #ret {
                #p::Session::with(self, #key, f)
            }
            fn #set(&self, value: #ty) {
                #p::Session::set(self, #key, value);
            }
            fn #update<#ret>(&self, f: impl #p::Fn(&mut #ty) -> #ret + #p::Send + #p::Sync + 'static) -> #ret {
                #p::Session::update(self, #key, f)
            }
            fn #take(&self) -> #ty {
                #p::Session::take(self, #key)
            }
            fn #remove(&self) {
                #p::Session::remove(self, #key);
            }
        }
    });

    // Assumed rather than checked here, so that a field type that is not
    // `Clone + Default` is reported once, at the field (`field_assertions`).
    let bounds = fields.iter().map(|(_, field)| {
        let ty = &field.ty;
        let inner = field
            .flash
            .as_ref()
            .map(|inner| quote!(for<'__sessionkit> #inner: #p::Send + 'static,));
        quote!(for<'__sessionkit> #ty: #p::FieldValue, #inner)
    });

    let trait_doc = format!(
        "Typed accessors for the stored fields of [`{struct_name}`] on a `Session<{struct_name}>`, \
         generated by `#[derive(SessionData)]`.\n\n\
         Bring the trait into scope to use them. Setting a field marks only that field changed. \
         Fields with `#[session(skip)]` have no accessors (they are not stored): reach them \
         with `Session::read` and `Session::modify`."
    );

    quote! {
        #[doc = #trait_doc]
        #[allow(non_camel_case_types, clippy::all, clippy::pedantic)]
        #vis trait #trait_ident {
            #(#declarations)*
        }

        #[automatically_derived]
        #[allow(unused_qualifications, clippy::all, clippy::pedantic)]
        impl #trait_ident for #p::Session<#ident>
        where
            #(#bounds)*
        {
            #(#definitions)*
        }
    }
}

/// The name of the closures' return type parameter: `R`, unless a field type
/// names something `R` (the parameter would shadow it).
fn return_type_param(fields: &[(usize, &Field<'_>)]) -> proc_macro2::Ident {
    fn mentions(tokens: TokenStream, name: &str) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == name,
            proc_macro2::TokenTree::Group(group) => mentions(group.stream(), name),
            _ => false,
        })
    }
    let mut name = "R".to_owned();
    while fields.iter().any(|(_, f)| mentions(f.ty.clone(), &name)) {
        name.push('_');
    }
    format_ident!("{}", name)
}

/// `Clone + Default` checks, one per stored field, at the field's type; and
/// a check, at the field's name, that none of its accessors is named like a
/// method of `Session` (the runtime's `RESERVED_NAMES`, evaluated at compile
/// time, so the list lives next to `Session` and nowhere else).
fn field_assertions(krate: &TokenStream, cont: &Container<'_>) -> TokenStream {
    let p = quote!(#krate::__private);
    let asserts = stored(cont).map(|(_, field)| {
        let ty = &field.ty;
        let span = field.original.ty.span();
        quote_spanned!(span=> #p::assert_field_value::<#ty>();)
    });
    let reserved = stored(cont).filter(|(_, f)| f.accessors).flat_map(|(_, field)| {
        let p = &p;
        valid::all_accessor_names(field).into_iter().map(move |accessor| {
            let name = accessor.unraw().to_string();
            let message = format!(
                "field `{}` would get the accessor `{name}()`, which clashes with `Session::{name}`; rename the Rust field and keep the stored name with `#[session(rename = {:?})]`",
                field.rust_name, field.stored_name
            );
            // One constant per accessor, so every clash is reported.
            quote_spanned!(field.ident.span()=>
                #[allow(clippy::all, clippy::pedantic)]
                const _: () = if #p::is_reserved_name(#name) {
                    ::core::panic!(#message)
                };
            )
        })
    });
    quote! {
        #[allow(clippy::all, clippy::pedantic)]
        const _: () = {
            #(#asserts)*
        };
        #(#reserved)*
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::{TokenStream, TokenTree};

    fn idents(tokens: TokenStream, out: &mut Vec<String>) {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => out.push(ident.to_string()),
                TokenTree::Group(group) => idents(group.stream(), out),
                _ => {}
            }
        }
    }

    fn expand(source: &str) -> Vec<String> {
        let input: syn::DeriveInput = syn::parse_str(source).expect("valid input");
        let mut out = Vec::new();
        idents(super::derive(&input), &mut out);
        out
    }

    #[test]
    fn the_crate_attribute_replaces_every_sessionkit_path() {
        let out = expand(
            r#"#[session(crate = "sk")] struct A { #[header("X-A")] a: u8, b: Vec<u8>, #[session(skip)] c: u8 }"#,
        );
        assert!(out.iter().any(|i| i == "sk"));
        assert!(!out.iter().any(|i| i == "sessionkit"));
        assert!(!out.iter().any(|i| i == "compile_error"));
    }

    #[test]
    fn the_default_path_is_absolute() {
        let out = expand("struct A { a: u8 }");
        assert!(out.iter().any(|i| i == "sessionkit"));
        assert!(out.iter().any(|i| i == "ASessionExt"));
    }

    #[test]
    fn errors_come_with_a_stub() {
        let out = expand(r#"struct A { #[header("bad name")] a: u8 }"#);
        assert!(out.iter().any(|i| i == "compile_error"));
        assert!(out.iter().any(|i| i == "SessionData"));
        assert!(out.iter().any(|i| i == "ASessionExt"));
    }
}
