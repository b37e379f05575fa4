//! Code generation. Generated code names only `::messages_core::...` paths.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Path};

use crate::attr::{Args, HandlerPath};
use crate::handler::{Errors, Handler, Kind, Rebind, not_a_function};
use crate::rewrite;

/// `#[with_messages(args)] item`: the expansion, plus every problem found as a
/// `compile_error!` beside it. The item is always emitted (repaired where possible), so a
/// mistake is reported once, not again by each use of the handler.
pub(crate) fn with_messages(args: TokenStream, item: &TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut args = errors.ok(syn::parse2::<Args>(args)).unwrap_or_default();
    let Ok(mut handler) = syn::parse2::<Handler>(item.clone()) else {
        errors.push(not_a_function());
        let errors = errors.into_compile_errors();
        return quote!(#errors #item);
    };
    let expanded = match handler.check(&mut args, &mut errors) {
        Kind::Free => free_function(handler, &args),
        Kind::Method(Some(rebind)) => method(handler, &args, &rebind),
        Kind::Method(None) => function(handler, &TokenStream::new(), false),
    };
    let errors = errors.into_compile_errors();
    quote!(#errors #expanded)
}

/// `view_of!(path)`: the `&'static View` of a `#[with_messages]` free function.
pub(crate) fn view_of(input: TokenStream) -> TokenStream {
    syn::parse2::<HandlerPath>(input)
        .map_or_else(syn::Error::into_compile_error, |p| handler_view(&p.0))
}

/// The view declared by the handler at `path`, checked by the compiler.
fn handler_view(path: &Path) -> TokenStream {
    quote_spanned!(path.span()=> <#path as ::messages_core::__private::ViewHandler>::VIEW)
}

/// The `View` value of a handler that declares its own view (no `view = handler`).
fn new_view(name: &Ident, args: &Args) -> TokenStream {
    let span = name.span();
    let name = name.unraw().to_string();
    let id = args.id().map_or_else(
        || quote_spanned!(span=> ::core::concat!(::core::module_path!(), "::", #name)),
        |id| quote!(#id),
    );
    // `file!()`/`line!()` spanned at the function's name: its line, not the attribute's.
    quote_spanned!(span=> ::messages_core::View::new(#id, #name, ::core::file!(), ::core::line!()))
}

/// A free function: a marker type of the same name (type namespace) carrying the view, the
/// registration, and the function with a hidden extractor and `self` as the context.
fn free_function(mut handler: Handler, args: &Args) -> TokenStream {
    let name = handler.sig.ident.clone();
    let span = name.span();
    let vis = &handler.vis;
    let cfgs: Vec<&Attribute> = handler
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let (view, registration) = if let Some(path) = args.shared() {
        (handler_view(path), None)
    } else {
        let view = new_view(&name, args);
        let registration = quote_spanned! {span=>
            #(#cfgs)*
            ::messages_core::__private::inventory::submit! {
                ::messages_core::__private::ViewRegistration(
                    <#name as ::messages_core::__private::ViewHandler>::VIEW
                )
            }
        };
        (quote!(&#view), Some(registration))
    };
    let marker = quote_spanned! {span=>
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, unreachable_pub)]
        #vis struct #name {}

        #(#cfgs)*
        impl ::messages_core::__private::ViewHandler for #name {
            const VIEW: &'static ::messages_core::View = #view;
        }

        #registration
    };

    let param = Ident::new("__messages", Span::mixed_site());
    handler.sig.inputs.insert(
        0,
        syn::parse_quote_spanned!(Span::call_site()=> #param: ::messages_core::__private::Extractor),
    );
    let context = rewrite::context_ident(span);
    let prologue = quote_spanned! {span=>
        let #context = ::messages_core::__private::IntoContext::into_context(
            #param,
            <#name as ::messages_core::__private::ViewHandler>::VIEW,
        );
    };
    let function = function(handler, &prologue, true);
    quote!(#marker #function)
}

/// A method with a receiver: its messages parameter is rebound to the view's context; a
/// view of its own is registered from inside the body (no item can sit beside a method).
fn method(handler: Handler, args: &Args, rebind: &Rebind) -> TokenStream {
    let name = &handler.sig.ident;
    let span = name.span();
    let view = if let Some(path) = args.shared() {
        handler_view(path)
    } else {
        let view = new_view(name, args);
        quote_spanned! {span=> {
            static VIEW: ::messages_core::View = #view;
            ::messages_core::__private::inventory::submit! {
                ::messages_core::__private::ViewRegistration(&VIEW)
            }
            &VIEW
        }}
    };
    let Rebind {
        binding,
        mutability,
    } = rebind;
    let prologue = quote_spanned! {span=>
        let #mutability #binding = ::messages_core::__private::IntoContext::into_context(#binding, #view);
    };
    function(handler, &prologue, false)
}

/// The function, with `prologue` at the top of its body; `self` rewritten if asked.
fn function(handler: Handler, prologue: &TokenStream, rewrite_self: bool) -> TokenStream {
    let body = if rewrite_self {
        rewrite::rewrite_body(handler.body)
    } else {
        handler.body
    };
    let (attrs, vis, sig, inner_attrs) =
        (handler.attrs, handler.vis, handler.sig, handler.inner_attrs);
    let mut block = TokenStream::new();
    handler.brace.surround(&mut block, |block| {
        block.extend(quote!(#(#inner_attrs)* #prologue #body));
    });
    quote!(#(#attrs)* #vis #sig #block)
}
