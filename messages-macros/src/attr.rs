//! The arguments of `#[with_messages(...)]` and of `view_of!(...)`.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Lit, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(view);
}

/// What `#[with_messages(...)]` was given.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) view: Option<ViewArg>,
}

impl Args {
    /// `view = other_handler`.
    pub(crate) fn shared(&self) -> Option<&Path> {
        match &self.view {
            Some(ViewArg::Shared(path)) => Some(path),
            _ => None,
        }
    }

    /// `view = "stable.id"`.
    pub(crate) fn id(&self) -> Option<&LitStr> {
        match &self.view {
            Some(ViewArg::Id(id)) => Some(id),
            _ => None,
        }
    }
}

/// Which view a handler is bound to, when not its own default one.
pub(crate) enum ViewArg {
    /// `view = "stable.id"`: the handler declares a view with this id.
    Id(LitStr),
    /// `view = other_handler`: the handler shares another handler's view.
    Shared(Path),
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            if input.peek(kw::view) {
                let key: kw::view = input.parse()?;
                // At the end of the arguments syn would point at the whole attribute.
                let missing = |span| {
                    syn::Error::new(
                        span,
                        "`view` takes a value: `view = \"stable.id\"` or `view = other_handler`",
                    )
                };
                if input.is_empty() {
                    return Err(missing(key.span));
                }
                let eq: Token![=] = input.parse()?;
                if input.is_empty() {
                    return Err(missing(eq.span));
                }
                let value: ViewArg = input.parse()?;
                if let Some(first) = &args.view {
                    let msg = match (first, &value) {
                        (ViewArg::Id(_), ViewArg::Id(_))
                        | (ViewArg::Shared(_), ViewArg::Shared(_)) => "duplicate `view` argument",
                        _ => {
                            "`view` is given twice: a handler either declares its view id \
                             (`view = \"...\"`) or shares another handler's view \
                             (`view = handler`), not both"
                        }
                    };
                    return Err(syn::Error::new(key.span, msg));
                }
                args.view = Some(value);
            } else if input.peek(Ident::peek_any) {
                let unknown = input.call(Ident::parse_any)?;
                return Err(syn::Error::new(
                    unknown.span(),
                    format!(
                        "unknown argument `{unknown}`: `#[with_messages]` takes \
                         `view = \"stable.id\"` or `view = other_handler`"
                    ),
                ));
            } else {
                return Err(
                    input.error("expected `view = \"stable.id\"` or `view = other_handler`")
                );
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

impl Parse for ViewArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            // Checked by `messages_core::ViewId::from_static` in the expansion: the rules
            // of a view id are written once, in core.
            Ok(ViewArg::Id(input.parse()?))
        } else if input.peek(Lit) || !starts_path(input) {
            Err(input.error(
                "expected a view id string (`view = \"stable.id\"`) or the path of a \
                 `#[with_messages]` handler (`view = other_handler`)",
            ))
        } else {
            Ok(ViewArg::Shared(input.parse::<HandlerPath>()?.0))
        }
    }
}

fn starts_path(input: ParseStream<'_>) -> bool {
    input.peek(Token![::]) || input.peek(Ident::peek_any)
}

/// A path naming a `#[with_messages]` free function: no generic arguments.
pub(crate) struct HandlerPath(pub(crate) Path);

impl Parse for HandlerPath {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !starts_path(input) {
            return Err(input.error(
                "expected the path of a `#[with_messages]` handler, like `view_of!(handlers::settings)`",
            ));
        }
        Path::parse_mod_style(input).map(HandlerPath)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(tokens: &str) -> syn::Result<Args> {
        syn::parse_str(tokens)
    }

    #[test]
    fn accepted_forms() {
        assert!(parse("").unwrap().view.is_none());
        assert!(matches!(
            parse(r#"view = "a.b""#).unwrap().view,
            Some(ViewArg::Id(_))
        ));
        // The id's rules are checked by core, in the expansion.
        assert!(matches!(
            parse(r#"view = "not an id""#).unwrap().view,
            Some(ViewArg::Id(_))
        ));
        assert!(matches!(
            parse("view = crate::h::settings,").unwrap().view,
            Some(ViewArg::Shared(_))
        ));
    }

    #[test]
    fn refused_forms_say_why() {
        let err = |s: &str| parse(s).err().unwrap().to_string();
        assert!(err("views = \"a\"").starts_with("unknown argument `views`"));
        assert_eq!(
            err(r#"view = "a", view = "b""#),
            "duplicate `view` argument"
        );
        assert!(err(r#"view = "a", view = b"#).contains("not both"));
        assert!(err("view = 5").starts_with("expected a view id string"));
        assert_eq!(err("view = h::<u8>"), "expected path segment after `::`");
        assert!(err("view").starts_with("`view` takes a value"));
        assert!(err("view =").starts_with("`view` takes a value"));
    }
}
