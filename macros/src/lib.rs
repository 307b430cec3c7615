//! `#[shmkit::task]`: registers a plain function under a stable name, so that a shmkit pool
//! whose workers run on other hosts (`shmkit::redis::RedisPool`) can name it. Use it through
//! `shmkit` (feature `redis`), not directly.

use proc_macro::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, parse_macro_input};

/// Registers the function under `module_path!()::name` (or `#[task(name = "...")]`), with a
/// fingerprint of its argument and result types, for `shmkit::redis::RedisPool`.
///
/// The function must be a plain, non-generic, non-async `fn` of one to six owned arguments.
/// One argument: it runs under `map`, `imap` and `apply`; several: under `starmap` and
/// `apply_star`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("#[shmkit::task] takes only `name = \"...\"`"))
        }
    });
    parse_macro_input!(attr with parser);
    match expand(&func, name) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#func #e).into()
        }
    }
}

fn expand(func: &ItemFn, name: Option<LitStr>) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[shmkit::task] cannot be generic: a worker on another host needs one concrete function",
        ));
    }
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            "a #[shmkit::task] cannot be async",
        ));
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Typed(t) => types.push((*t.ty).clone()),
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "a #[shmkit::task] is a plain function, not a method",
                ));
            }
        }
    }
    if types.is_empty() || types.len() > 6 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a #[shmkit::task] takes one to six arguments",
        ));
    }
    let ident = &sig.ident;
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let name = match name {
        Some(lit) => quote!(#lit),
        None => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#ident)
        )),
    };
    let def = if types.len() == 1 {
        let a = &types[0];
        quote!(::shmkit::__private::TaskDef::map::<_, #a, #output>(#name, #ident))
    } else {
        quote!(::shmkit::__private::TaskDef::star::<_, (#(#types,)*), #output>(#name, #ident))
    };
    Ok(quote! {
        #func
        ::shmkit::__private::inventory::submit! { #def }
    })
}
