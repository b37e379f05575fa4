//! The annotated function: parsed without its body, then checked.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, Pat, PatIdent, PatType, Signature, Token, Type, Visibility, braced,
    token,
};

/// An `fn` item, body kept as tokens: the signature is all the macro needs to check, and
/// a body with syntax errors still expands (IDEs keep working).
pub(crate) struct Handler {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) brace: token::Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) body: TokenStream,
}

impl Parse for Handler {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(Handler {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

/// How a handler gets at its view's `ViewMessages`.
pub(crate) enum Kind {
    /// A free function: a hidden `Messages` parameter, and `self` in the body is the
    /// view's `ViewMessages`. Both are hygienic (mixed-site): the user's own names cannot
    /// clash.
    Free,
    /// A method with a real receiver: its parameter of type `Messages` is rebound to the
    /// view's `ViewMessages`. `None` when it has none: the method is then left as written.
    Method(Option<Rebind>),
}

/// The method parameter that becomes the view's `ViewMessages`.
pub(crate) struct Rebind {
    pub(crate) binding: Ident,
    pub(crate) mutability: Option<Token![mut]>,
}

/// What is refused when no fn is there at all.
pub(crate) fn not_a_function() -> syn::Error {
    syn::Error::new(
        Span::call_site(),
        "`#[with_messages]` applies to an `async fn` handler with a body: a free function, \
         or a method with a `self` receiver",
    )
}

impl Handler {
    /// Checks the handler's signature. Problems are reported at the user's
    /// tokens and repaired where that lets the expansion compile, so each one is reported
    /// once (no follow-up errors from a half-expanded item).
    pub(crate) fn check(&mut self, errors: &mut Errors) -> Kind {
        if let Some(constness) = self.sig.constness.take() {
            errors.push(syn::Error::new(
                constness.span,
                "a `#[with_messages]` handler cannot be a `const fn`",
            ));
        }
        if self.sig.asyncness.is_none() {
            errors.push(syn::Error::new(
                self.sig.fn_token.span,
                "a `#[with_messages]` handler must be an `async fn`",
            ));
            self.sig.asyncness = Some(Token![async](self.sig.fn_token.span));
        }
        match self.sig.receiver() {
            None => Kind::Free,
            Some(receiver) => {
                let receiver = receiver.span();
                self.check_method(receiver, errors)
            }
        }
    }

    fn check_method(&mut self, receiver: Span, errors: &mut Errors) -> Kind {
        let mut found: Option<Rebind> = None;
        let mut seen = false;
        for input in &mut self.sig.inputs {
            let FnArg::Typed(PatType { pat, ty, .. }) = input else {
                continue;
            };
            if !is_messages_type(ty) {
                continue;
            }
            let first = !std::mem::replace(&mut seen, true);
            let Pat::Ident(PatIdent {
                by_ref: None,
                mutability,
                ident,
                subpat: None,
                ..
            }) = &mut **pat
            else {
                errors.push(syn::Error::new(
                    pat.span(),
                    "bind the messages parameter to a name, like `messages: Messages`: it becomes \
                     the view's `ViewMessages`",
                ));
                continue;
            };
            if !first {
                errors.push(syn::Error::new(
                    ident.span(),
                    "a `#[with_messages]` method takes one `Messages` parameter",
                ));
                continue;
            }
            // The parameter is moved into the rebinding; `mut` belongs on the latter.
            found = Some(Rebind {
                binding: ident.clone(),
                mutability: mutability.take(),
            });
        }
        if !seen {
            errors.push(syn::Error::new(
                receiver,
                "in a method, `self` is the receiver: a `#[with_messages]` method takes a \
                 parameter of type `Messages`, which becomes the view's `ViewMessages`",
            ));
        }
        Kind::Method(found)
    }
}

/// `Messages`, a path ending in it, or a reference to one.
fn is_messages_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_messages_type(&r.elem),
        Type::Paren(p) => is_messages_type(&p.elem),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.arguments.is_none() && s.ident == "Messages"),
        _ => false,
    }
}

/// Problems found so far, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value, or `None` with the error kept.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// The `compile_error!`s, empty when there is none.
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.0
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}
