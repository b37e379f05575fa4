//! Turns `self` in a free handler's body into the variable that holds the view's
//! `ViewMessages`.
//!
//! Parsed code is rewritten on the syntax tree: every `self` *expression* (a receiver, a
//! field base, an argument, a captured value in a closure or an async block) becomes that
//! variable. Nested items (`fn`, `impl`, `mod`, ...) keep their own `self`. Macro
//! invocations are opaque to syn, so their tokens are rewritten one by one with the same
//! rules; so is a body that does not parse (the compiler then reports the syntax error,
//! and IDEs keep completing `self.`).
//!
//! The replacement keeps the `self` token's location, so errors point at the user's code,
//! and resolves with mixed-site hygiene, so the user's own bindings can neither see nor
//! shadow it.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprPath, Item, Macro, Stmt};

/// The local variable that holds a free handler's `ViewMessages`.
pub(crate) fn context_ident(located_at: Span) -> Ident {
    Ident::new("__messages_ctx", Span::mixed_site().located_at(located_at))
}

/// The statements of a body with `self` rewritten.
pub(crate) fn rewrite_body(body: TokenStream) -> TokenStream {
    match syn::parse::Parser::parse2(Block::parse_within, body.clone()) {
        Ok(mut stmts) => {
            let mut rewriter = SelfToContext;
            for stmt in &mut stmts {
                rewriter.visit_stmt_mut(stmt);
            }
            stmts.iter().map(Stmt::to_token_stream).collect()
        }
        Err(_) => rewrite_tokens(body),
    }
}

struct SelfToContext;

impl VisitMut for SelfToContext {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Path(ExprPath {
            qself: None,
            path,
            attrs,
        }) = expr
            && attrs.is_empty()
            && path.leading_colon.is_none()
            && path.segments.len() == 1
            && let Some(segment) = path.segments.first_mut()
            && segment.ident == "self"
            && segment.arguments.is_none()
        {
            segment.ident = context_ident(segment.ident.span());
            return;
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        // A nested item has its own `self` (or none); only a macro invocation in item
        // position (`name! { ... }`, not `macro_rules! name`) belongs to the handler.
        if let Item::Macro(item) = item
            && item.ident.is_none()
        {
            self.visit_macro_mut(&mut item.mac);
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = rewrite_tokens(std::mem::take(&mut mac.tokens));
    }
}

/// Token-level rewrite: `self` not followed by `::`, outside nested items, `use`
/// declarations and `pub(self)`.
pub(crate) fn rewrite_tokens(tokens: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(token) = iter.next() {
        match token {
            TokenTree::Ident(ident) if ident == "self" => {
                let is_path =
                    matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if is_path {
                    out.extend([TokenTree::Ident(ident)]);
                } else {
                    out.extend([TokenTree::Ident(context_ident(ident.span()))]);
                }
            }
            TokenTree::Ident(ident) if starts_nested_item(&ident, iter.peek()) => {
                let until_brace = ident != "use";
                out.extend([TokenTree::Ident(ident)]);
                // Copied verbatim up to the item's body (or its `;`).
                for token in iter.by_ref() {
                    let end = match &token {
                        TokenTree::Group(g) => until_brace && g.delimiter() == Delimiter::Brace,
                        TokenTree::Punct(p) => p.as_char() == ';',
                        _ => false,
                    };
                    out.extend([token]);
                    if end {
                        break;
                    }
                }
            }
            TokenTree::Ident(ident) if ident == "pub" => {
                out.extend([TokenTree::Ident(ident)]);
                // `pub(self)` is a visibility, not a value.
                if let Some(TokenTree::Group(g)) = iter.peek()
                    && g.delimiter() == Delimiter::Parenthesis
                {
                    out.extend(iter.next());
                }
            }
            TokenTree::Group(group) => {
                let mut rewritten = Group::new(group.delimiter(), rewrite_tokens(group.stream()));
                rewritten.set_span(group.span());
                out.extend([TokenTree::Group(rewritten)]);
            }
            other => out.extend([other]),
        }
    }
    out
}

/// `fn name`, `impl`, `mod`, `trait`, `use`, `macro_rules!`: the start of an item whose
/// `self` is not the handler's. (`fn(` is a function pointer type, not an item.)
fn starts_nested_item(ident: &Ident, next: Option<&TokenTree>) -> bool {
    match ident.to_string().as_str() {
        "fn" => matches!(next, Some(TokenTree::Ident(_))),
        "impl" | "mod" | "trait" | "use" => true,
        "macro_rules" => matches!(next, Some(TokenTree::Punct(p)) if p.as_char() == '!'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use quote::quote;

    fn body(tokens: TokenStream) -> String {
        rewrite_body(tokens).to_string()
    }

    #[test]
    fn expressions_are_rewritten_paths_and_types_are_not() {
        let out = body(quote! {
            self.add_message(m);
            let c = self;
            let f = move || self.count();
            let v = self::helper(Self::X, self.0);
        });
        assert_eq!(out.matches("__messages_ctx").count(), 4, "{out}");
        assert!(out.contains("self :: helper"), "{out}");
        assert!(out.contains("Self :: X"), "{out}");
    }

    #[test]
    fn nested_items_keep_their_self() {
        let out = body(quote! {
            struct S;
            impl S { fn get(&self) -> &Self { self } }
            fn inner() { let x = 1; }
            mod m { pub(self) fn f() {} }
            self.add_message(m);
        });
        assert_eq!(out.matches("__messages_ctx").count(), 1, "{out}");
        assert!(out.contains("{ self }"), "{out}");
    }

    #[test]
    fn macro_bodies_are_rewritten_at_token_level() {
        let out = body(quote! {
            let t = format!("{} {}", self.count().await, [self.view()].len());
            vec![self];
            macro_rules! m { () => { self } }
            println!("{:?}", { use std::io::{self}; 1 });
        });
        assert_eq!(out.matches("__messages_ctx").count(), 3, "{out}");
        assert!(out.contains("io :: { self }"), "{out}");
        assert!(out.contains("=> { self }"), "{out}");
    }

    #[test]
    fn unparsable_bodies_fall_back_to_tokens() {
        let out = body(quote! { self.add_message(,); fn f(&self) { self } });
        assert_eq!(out.matches("__messages_ctx").count(), 1, "{out}");
        assert!(out.contains("{ self }"), "{out}");
    }

    #[test]
    fn function_pointer_types_are_not_items() {
        let out = rewrite_tokens(quote! { let f: fn(u8) = self.f; });
        assert!(out.to_string().contains("__messages_ctx . f"), "{out}");
    }
}
