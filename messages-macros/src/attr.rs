//! The arguments of `#[with_messages(...)]` and of `view_of!(...)`.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Lit, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(view);
}

/// Longest view id, in bytes (`messages_core::MAX_VIEW_ID_BYTES`).
const MAX_VIEW_ID_BYTES: usize = 200;

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
            let id: LitStr = input.parse()?;
            check_view_id(&id)?;
            Ok(ViewArg::Id(id))
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

/// The rules of `messages_core::ViewId`, checked at compile time: 1 to 200 bytes of
/// printable ASCII other than space, `"` `\` `{` `}` `;`.
pub(crate) fn check_view_id(id: &LitStr) -> syn::Result<()> {
    let value = id.value();
    let problem = if value.is_empty() {
        Some("a view id cannot be empty".to_owned())
    } else if value.len() > MAX_VIEW_ID_BYTES {
        Some(format!(
            "a view id is at most {MAX_VIEW_ID_BYTES} bytes; this one has {}",
            value.len()
        ))
    } else {
        value.chars().find(|&c| !is_view_id_char(c)).map(|c| {
            format!(
                "a view id is printable ASCII without space, `\"`, `\\`, `{{`, `}}` or `;`; \
                 found {c:?}"
            )
        })
    };
    match problem {
        Some(msg) => Err(syn::Error::new(id.span(), msg)),
        None => Ok(()),
    }
}

fn is_view_id_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '{' | '}' | ';')
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
        assert!(err(r#"view = "a b""#).contains("found ' '"));
        assert!(err(r#"view = """#).contains("empty"));
        assert!(err(&format!("view = \"{}\"", "x".repeat(201))).contains("201"));
        assert!(err(r#"view = "café""#).contains("'é'"));
    }
}
