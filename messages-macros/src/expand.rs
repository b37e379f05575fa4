//! Code generation. Generated code names only `::messages_core::...` paths (and `::core`,
//! `::std::sync::LazyLock`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Path};

use crate::attr::{Args, HandlerPath};
use crate::handler::{Errors, Handler, Kind, Rebind, not_a_function};
use crate::rewrite;

/// `#[with_messages(args)] item`: the expansion, plus every problem found as a
/// `compile_error!` beside it. The item is always emitted (repaired where possible), so a
/// mistake is reported once, not again by each use of the handler.
pub(crate) fn with_messages(args: TokenStream, item: &TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = errors.ok(syn::parse2::<Args>(args)).unwrap_or_default();
    let Ok(mut handler) = syn::parse2::<Handler>(item.clone()) else {
        errors.push(not_a_function());
        let errors = errors.into_compile_errors();
        return quote!(#errors #item);
    };
    let expanded = match handler.check(&mut errors) {
        Kind::Free => free_function(handler, &args),
        Kind::Method(Some(rebind)) => method(handler, &args, &rebind),
        Kind::Method(None) => function(handler, &TokenStream::new(), false),
    };
    let errors = errors.into_compile_errors();
    quote!(#errors #expanded)
}

/// `view_of!(path)`: the `&'static View` of a `#[with_messages]` free function.
pub(crate) fn view_of(input: TokenStream) -> TokenStream {
    let one_path = |input: ParseStream<'_>| {
        let path: HandlerPath = input.parse()?;
        if !input.is_empty() {
            return Err(input
                .error("`view_of!` takes one handler path, like `view_of!(handlers::settings)`"));
        }
        Ok(path)
    };
    one_path
        .parse2(input)
        .map_or_else(syn::Error::into_compile_error, |p| handler_view(&p.0))
}

/// The view declared by the handler at `path`, checked by the compiler: the hidden
/// constant beside the handler, found by rewriting the path's last segment.
fn handler_view(path: &Path) -> TokenStream {
    let mut path = path.clone();
    if let Some(last) = path.segments.last_mut() {
        last.ident = marker_ident(&last.ident);
    }
    quote!(#path)
}

/// The hidden constant beside a handler `name` that holds its `&'static View`: a name of
/// the value namespace that no user item takes, so the handler compiles beside a module,
/// a type or an import of its own name. It resolves like the user's own tokens, so
/// `view_of!` finds it by path wherever the handler itself is visible; for a path to
/// anything else, rustc's "cannot find value `__with_messages_handler_x_...`" says what
/// is wrong. The suffix (a hash of the name) keeps two handlers' markers far apart, so
/// rustc never offers another handler's marker as a "similarly named constant".
fn marker_ident(name: &Ident) -> Ident {
    let unraw = name.unraw().to_string();
    let hash = fnv1a(unraw.as_bytes());
    Ident::new(
        &format!("__with_messages_handler_{unraw}_{hash:016x}"),
        name.span(),
    )
}

/// 64-bit FNV-1a: stable across compilers and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `View` value of a handler that declares its own view (no `view = handler`).
///
/// The id is checked by core's const `View::new` (`ViewId::from_static`) when the `static`
/// holding the view is evaluated: the rules of a view id live there only. The call is
/// spanned at the id, so a refused id is a compile error at the `view = "..."` literal,
/// or at the handler's name for the id derived from it (`module::path::name`).
fn new_view(name: &Ident, args: &Args) -> TokenStream {
    let span = name.span();
    let name = name.unraw().to_string();
    let (id, id_span) = match args.id() {
        Some(id) => (quote!(#id), id.span()),
        None => (
            quote_spanned!(span=> ::core::concat!(::core::module_path!(), "::", #name)),
            span,
        ),
    };
    // `file!()`/`line!()` spanned at the function's name: its line, not the attribute's.
    let place = quote_spanned!(span=> ::core::file!(), ::core::line!());
    quote_spanned!(id_span=> ::messages_core::View::new(#id, #name, #place))
}

/// A function without a receiver (free, or associated in an `impl`): a hidden constant
/// beside it holding the view (and registering it), and the function with a hidden
/// `Messages` parameter and `self` as the view's `ViewMessages`.
///
/// The body does not name the constant (a bare name would not resolve in an `impl`):
/// it builds the same `View` value itself, or names the shared handler's constant. Its
/// copy is built on first use, not evaluated at compile time: the constant's `static` is
/// the one place the id is checked, so a refused id is one compile error, not two.
///
/// A handler is called by a framework: with no framework feature of `messages-core`
/// enabled, the body's `require_framework!()` is one compile error at the attribute
/// saying which feature to enable (the hidden parameter's type exists either way, so
/// nothing else fails).
fn free_function(mut handler: Handler, args: &Args) -> TokenStream {
    let name = handler.sig.ident.clone();
    let span = name.span();
    let vis = &handler.vis;
    let cfgs: Vec<&Attribute> = handler
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let (declared, used) = if let Some(path) = args.shared() {
        let view = handler_view(path);
        (view.clone(), view)
    } else {
        let view = new_view(&name, args);
        let declared = quote_spanned! {span=> {
            static VIEW: ::messages_core::View = #view;
            ::messages_core::__private::inventory::submit! {
                ::messages_core::__private::ViewRegistration(&VIEW)
            }
            &VIEW
        }};
        let used = quote_spanned! {span=> {
            static VIEW: ::std::sync::LazyLock<::messages_core::View> =
                ::std::sync::LazyLock::new(|| #view);
            ::std::sync::LazyLock::force(&VIEW)
        }};
        (declared, used)
    };
    let marker = marker_ident(&name);
    let marker = quote_spanned! {span=>
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code, unreachable_pub)]
        #vis const #marker: &::messages_core::View = #declared;
    };

    let param = Ident::new("__messages", Span::mixed_site());
    handler.sig.inputs.insert(
        0,
        syn::parse_quote_spanned!(Span::call_site()=> #param: ::messages_core::__private::Extractor),
    );
    let context = rewrite::context_ident(span);
    let require_framework = quote_spanned! {Span::call_site()=>
        ::messages_core::__private::require_framework!();
    };
    let prologue = quote_spanned! {span=>
        #require_framework
        let #context = ::messages_core::__private::IntoContext::into_context(#param, #used);
    };
    let function = function(handler, &prologue, true);
    quote!(#marker #function)
}

/// A method with a receiver: its messages parameter is rebound to the view's
/// `ViewMessages`; a view of its own is registered from inside the body (no item can sit
/// beside a method), and its `static` is where the id is checked.
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
