//! Procedural macros of `messages-core`: `#[with_messages]` and `view_of!`.
//!
//! Use them through `messages_core` (`use messages_core::prelude::*;`): the expansion names
//! `::messages_core::...` paths only, so the facade must be a dependency under that name.

mod attr;
mod expand;
mod handler;
mod rewrite;

use proc_macro::TokenStream;

/// Binds an async handler to a **view**: inside it, `self` is that view's `ViewMessages`
/// (`self.add_message(...)`, `self.messages().await`, `self.peek()`, `self.count()`,
/// `self.discard()`), and the view is listed by `messages_core::views()`.
///
/// # On a free function (axum handler)
///
/// ```
/// use axum::{Router, http::StatusCode, routing::get};
/// use messages_core::prelude::*;
///
/// // View id `module::path::save_settings`, derived at compile time.
/// #[with_messages]
/// async fn save_settings(body: String) -> StatusCode {
///     self.add_message(Message::success(format!("Saved {} bytes.", body.len())));
///     StatusCode::SEE_OTHER
/// }
///
/// // Shares `save_settings`' view (GET shows what POST added); not registered again.
/// #[with_messages(view = save_settings)]
/// async fn settings() -> String {
///     let list = self.messages().await; // lazy: no store I/O unless asked
///     list.iter().map(|m| m.text().to_owned()).collect() // iterating consumes
/// }
///
/// // A stable id that survives moving or renaming the function.
/// #[with_messages(view = "dashboard")]
/// async fn dashboard() -> String {
///     format!("{} waiting", self.count().await)
/// }
///
/// let app: Router = Router::new()
///     .route("/settings", get(settings).post(save_settings))
///     .route("/dashboard", get(dashboard));
/// assert_eq!(view_of!(dashboard).id().as_str(), "dashboard");
/// assert_eq!(view_of!(settings), view_of!(save_settings));
/// ```
///
/// The function gets a hidden first parameter of type `messages_core::Messages`: the
/// request's messages, the same type for every framework. The framework integration
/// provides it (with feature `axum`, `Messages` is an extractor, so the messages layer
/// must be installed on the router; being first, it comes before a body extractor).
/// Without a framework feature of `messages-core`, each such handler is a compile error
/// saying which feature to enable.
///
/// # How `view_of!` finds a handler's view
///
/// Beside the function, a hidden constant holds its view. Its name is derived from the
/// handler's (`__with_messages_handler_<name>_<hash>`), so the handler compiles beside a
/// module, a type or an import of its own name. `view_of!(path::to::handler)` and
/// `view = path::to::handler` rewrite the path's last segment to that name, so **a path
/// finds the view wherever it finds the handler**: in the same module, through
/// `crate::`/`super::`/module paths, after a glob import (`use handlers::*;`), from
/// another crate (the constant has the handler's visibility). A `use` of the handler
/// alone (`use handlers::settings;`) brings the function, not its view: write
/// `view_of!(handlers::settings)`. A path to anything else is rustc's "cannot find value
/// `__with_messages_handler_...`" at that path.
///
/// `self` is rewritten wherever the handler's body uses it as a value — in closures,
/// async blocks and macro arguments too (`format!("{}", self.count().await)`). It is left
/// alone in `self::path`s, in `Self`, and inside nested items (`fn`, `impl`, `mod`),
/// which have their own `self`. The hidden names are hygienic: they cannot clash with the
/// handler's own.
///
/// # On a method
///
/// In a method with a receiver, `self` stays the receiver; the method takes a parameter
/// of type `Messages` (or `&Messages`), and that binding becomes the view's
/// `ViewMessages`:
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use messages_core::Messages;
/// use messages_core::prelude::*;
///
/// struct Pages { greeting: String }
///
/// impl Pages {
///     #[with_messages(view = "pages.home")]
///     async fn home(&self, messages: Messages) -> String {
///         messages.add_message(Message::info(self.greeting.clone()));
///         messages.count().await.to_string()
///     }
/// }
///
/// let pages = Arc::new(Pages { greeting: "Hello".into() });
/// let app: Router = Router::new()
///     .route("/", get(move |m: Messages| async move { pages.home(m).await }));
/// ```
///
/// A method's view is registered from inside its body, and `view_of!` cannot name it.
/// Its default id is `module::path::method_name`: when two types in one module have
/// methods of the same name, give them `view = "..."` ids (`messages_core::check_views()`
/// reports such collisions).
///
/// An associated function *without* a receiver is a handler like a free function (`self`
/// is the view's `ViewMessages`), named `view_of!(Type::function)` or
/// `view = Self::function`. It cannot be in a *trait* impl (the hidden constant is not a
/// member of the trait).
///
/// # With other attribute macros
///
/// Put `#[with_messages]` above `#[axum::debug_handler]`, so that it expands first and
/// debug_handler checks the function axum will call. The other way round, debug_handler
/// checks the function as written (no extractor, `self` not yet replaced), and its checks
/// fail with rustc errors `#[with_messages]` cannot intercept. `#[tracing::instrument]`
/// works in either order; above `#[with_messages]` its span records only the handler's
/// own arguments (below, the hidden extractor too).
///
/// ```
/// use messages_core::prelude::*;
///
/// #[tracing::instrument]
/// #[with_messages]
/// #[axum::debug_handler]
/// async fn save(body: String) -> String {
///     self.add_message(Message::success("Saved."));
///     body
/// }
/// ```
///
/// # Arguments
///
/// - `view = "stable.id"`: the view id, checked at compile time by
///   `messages_core::ViewId::from_static` (1 to 200 bytes of printable ASCII without
///   space, `"`, `\`, `{`, `}`, `;`). Without it the id is `module::path::function_name`,
///   checked the same way: a handler whose name (or module path) is not ASCII needs one.
/// - `view = path::to::handler`: share the view of another `#[with_messages]` free function.
///
/// # Errors
///
/// Misuse is a compile error at the offending token, and only that error: the function is
/// still emitted. Refused: a function that is not `async`, a `const fn`, anything that is
/// not a function with a body, unknown, duplicate or malformed arguments, an invalid id
/// (at the `view = "..."` string, or at the function's name for the derived id), a
/// `view = ...` path that is not a `#[with_messages]` handler, a method without (or with
/// two) messages parameters, a free function when no framework feature is enabled. (Wrong
/// stacking under `#[axum::debug_handler]`, above, is the exception: those errors come
/// from debug_handler's own expansion.)
///
/// ```compile_fail
/// use messages_core::prelude::*;
///
/// #[with_messages] // error: a `#[with_messages]` handler must be an `async fn`
/// fn settings() {}
/// ```
#[proc_macro_attribute]
pub fn with_messages(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::with_messages(args.into(), &item.into()).into()
}

/// The `&'static View` of a `#[with_messages]` free function, by path — for adding
/// messages out of band (from a background job) without spelling the id:
///
/// ```
/// use messages_core::prelude::*;
///
/// mod handlers {
///     use messages_core::prelude::*;
///
///     #[with_messages]
///     pub async fn dashboard() {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> messages_core::Result<()> {
/// let store = MemoryStore::new();
/// let session = SessionKey::generate()?;
/// let view = view_of!(handlers::dashboard);
/// store.add(&session, view.id(), Message::info("Import finished")).await?;
/// assert!(view.id().as_str().ends_with("::handlers::dashboard"));
/// # Ok(()) }
/// ```
///
/// It works in `const` items too. The path finds the view wherever it finds the handler,
/// except through a `use` of the handler alone (see [`with_messages`](macro@with_messages),
/// "How `view_of!` finds a handler's view"); a path to anything else does not compile.
#[proc_macro]
pub fn view_of(input: TokenStream) -> TokenStream {
    expand::view_of(input.into()).into()
}
