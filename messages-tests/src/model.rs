//! A reference model of the product's semantics, and a runner that checks any storage
//! against it through the request context (what a framework integration does).
//!
//! Each operation is one request of one browser on one view. The model keeps, per
//! (browser, view), the texts that must be shown next, in order; every read must return
//! exactly them (bound, ordered, exactly once), every failed or unrendered read must keep
//! them, and adds after a read must persist.

use std::collections::HashMap;

use messages_core::{Message, MessagesConfig, ViewId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::Browser;
use crate::conformance::texts;

/// The views operations run on.
pub const VIEWS: [ViewId; 3] = [
    ViewId::from_static("app::settings"),
    ViewId::from_static("app::dashboard"),
    ViewId::from_static("app::profile"),
];

/// One request. `browser` indexes the browsers, `view` indexes [`VIEWS`].
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub enum Op {
    /// Adds `n` messages.
    Add {
        browser: usize,
        view: usize,
        n: usize,
    },
    /// Reads the messages; renders them if `iterate`; the response fails unless `success`.
    Read {
        browser: usize,
        view: usize,
        iterate: bool,
        success: bool,
    },
    /// Peeks and counts without consuming.
    Peek { browser: usize, view: usize },
    /// Discards the view's messages unread.
    Discard { browser: usize, view: usize },
    /// Ends the browser's session (logout).
    EndSession { browser: usize },
    /// Reads and renders, then adds one message in the same request.
    ReadThenAdd { browser: usize, view: usize },
    /// Adds one message, then reads and renders in the same request.
    AddThenRead { browser: usize, view: usize },
    /// A request that touches no messages at all.
    Nothing { browser: usize },
    /// One request doing several things to one view, in order; the response fails
    /// unless `success`.
    Mixed {
        browser: usize,
        view: usize,
        steps: Vec<Step>,
        success: bool,
    },
}

/// One step of an [`Op::Mixed`] request.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Adds one message.
    Add,
    /// Loads the view's messages (`messages()`) and keeps the list, unrendered.
    Load,
    /// Renders one of the lists loaded so far (the index is taken modulo their number).
    Render(usize),
    /// Peeks.
    Peek,
    /// Counts.
    Count,
}

/// The proptest settings of the property tests: `cases` cases, the XorShift generator
/// (the default ChaCha costs a third of the time in debug builds), and no regression
/// files written into the source tree (a failure prints its minimal case).
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Operations over `browsers` browsers, at most `max_len` of them.
pub fn ops(browsers: usize, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let b = 0..browsers;
    let v = 0..VIEWS.len();
    let op = prop_oneof![
        4 => (b.clone(), v.clone(), 1..=3usize).prop_map(|(browser, view, n)| Op::Add { browser, view, n }),
        4 => (b.clone(), v.clone(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(browser, view, iterate, success)| Op::Read { browser, view, iterate, success }),
        1 => (b.clone(), v.clone()).prop_map(|(browser, view)| Op::Peek { browser, view }),
        1 => (b.clone(), v.clone()).prop_map(|(browser, view)| Op::Discard { browser, view }),
        1 => b.clone().prop_map(|browser| Op::EndSession { browser }),
        1 => (b.clone(), v.clone()).prop_map(|(browser, view)| Op::ReadThenAdd { browser, view }),
        1 => (b.clone(), v.clone()).prop_map(|(browser, view)| Op::AddThenRead { browser, view }),
        1 => b.clone().prop_map(|browser| Op::Nothing { browser }),
        3 => (b, v, prop::collection::vec(step(), 1..8), prop::bool::weighted(0.8))
            .prop_map(|(browser, view, steps, success)| Op::Mixed { browser, view, steps, success }),
    ];
    prop::collection::vec(op, 1..=max_len)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Add),
        2 => Just(Step::Load),
        2 => (0..4usize).prop_map(Step::Render),
        1 => Just(Step::Peek),
        1 => Just(Step::Count),
    ]
}

/// Runs `ops` against `config` and checks every read against the model. `cap` is the
/// store's per-context cap (the model drops the oldest beyond it on add).
pub async fn check(
    config: &MessagesConfig,
    ops: &[Op],
    browsers: usize,
    cap: usize,
) -> Result<(), TestCaseError> {
    let mut jars: Vec<Browser> = (0..browsers).map(|_| Browser::new()).collect();
    let mut model: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    let mut counter = 0usize;
    let mut next_text = || {
        counter += 1;
        format!("m{counter}")
    };
    for op in ops {
        match *op {
            Op::Add { browser, view, n } => {
                let req = jars[browser].begin(config);
                let ctx = req.context(&VIEWS[view]);
                let list = model.entry((browser, view)).or_default();
                for _ in 0..n {
                    let t = next_text();
                    ctx.add_message(Message::info(t.clone()));
                    list.push(t);
                }
                if list.len() > cap {
                    let excess = list.len() - cap;
                    list.drain(..excess);
                }
                jars[browser].finish(&req, true).await;
            }
            Op::Read {
                browser,
                view,
                iterate,
                success,
            } => {
                let req = jars[browser].begin(config);
                let list = req.context(&VIEWS[view]).messages().await;
                let expected = model.entry((browser, view)).or_default();
                prop_assert_eq!(list.len(), expected.len(), "{:?}", op);
                if iterate {
                    let got: Vec<String> = list.iter().map(|m| m.text().to_owned()).collect();
                    prop_assert_eq!(&got, &*expected, "{:?}", op);
                    if success {
                        expected.clear();
                    }
                }
                jars[browser].finish(&req, success).await;
            }
            Op::Peek { browser, view } => {
                let req = jars[browser].begin(config);
                let ctx = req.context(&VIEWS[view]);
                let got = texts(&ctx.peek().await);
                let expected = model.entry((browser, view)).or_default();
                prop_assert_eq!(&got, &*expected, "{:?}", op);
                prop_assert_eq!(ctx.count().await, expected.len());
                jars[browser].finish(&req, true).await;
            }
            Op::Discard { browser, view } => {
                let req = jars[browser].begin(config);
                req.context(&VIEWS[view]).discard();
                model.remove(&(browser, view));
                jars[browser].finish(&req, true).await;
            }
            Op::EndSession { browser } => {
                let req = jars[browser].begin(config);
                req.end_session();
                model.retain(|(b, _), _| *b != browser);
                jars[browser].finish(&req, true).await;
            }
            Op::ReadThenAdd { browser, view } => {
                let req = jars[browser].begin(config);
                let ctx = req.context(&VIEWS[view]);
                let got = texts(&ctx.messages().await.into_vec());
                let expected = model.entry((browser, view)).or_default();
                prop_assert_eq!(&got, &*expected, "{:?}", op);
                let t = next_text();
                ctx.add_message(Message::info(t.clone()));
                *expected = vec![t];
                jars[browser].finish(&req, true).await;
            }
            Op::AddThenRead { browser, view } => {
                let req = jars[browser].begin(config);
                let ctx = req.context(&VIEWS[view]);
                let t = next_text();
                ctx.add_message(Message::info(t.clone()));
                let got = texts(&ctx.messages().await.into_vec());
                let expected = model.entry((browser, view)).or_default();
                expected.push(t);
                prop_assert_eq!(&got, &*expected, "{:?}", op);
                expected.clear();
                jars[browser].finish(&req, true).await;
            }
            Op::Mixed {
                browser,
                view,
                ref steps,
                success,
            } => {
                let req = jars[browser].begin(config);
                let ctx = req.context(&VIEWS[view]);
                // Everything the view holds in this request, in order: what was stored,
                // then the adds. Every list loaded is a prefix of it; what a rendered list
                // held is consumed (on success), and nothing else.
                let mut all = model.get(&(browser, view)).cloned().unwrap_or_default();
                let mut lists = Vec::new();
                let mut shown = 0;
                for step in steps {
                    match *step {
                        Step::Add => {
                            let t = next_text();
                            ctx.add_message(Message::info(t.clone()));
                            all.push(t);
                        }
                        Step::Load => {
                            let list = ctx.messages().await;
                            prop_assert_eq!(list.len(), all.len(), "{:?} {:?}", op, step);
                            lists.push((list, all.len()));
                        }
                        Step::Render(i) if !lists.is_empty() => {
                            let (list, n) = &lists[i % lists.len()];
                            let got: Vec<String> =
                                list.iter().map(|m| m.text().to_owned()).collect();
                            prop_assert_eq!(&got[..], &all[..*n], "{:?} {:?}", op, step);
                            shown = shown.max(*n);
                        }
                        Step::Render(_) => {}
                        Step::Peek => {
                            prop_assert_eq!(&texts(&ctx.peek().await), &all, "{:?}", op);
                        }
                        Step::Count => {
                            prop_assert_eq!(ctx.count().await, all.len(), "{:?}", op);
                        }
                    }
                }
                jars[browser].finish(&req, success).await;
                let mut left = if success { all.split_off(shown) } else { all };
                if left.len() > cap {
                    left.drain(..left.len() - cap);
                }
                model.insert((browser, view), left);
            }
            Op::Nothing { browser } => {
                let req = jars[browser].begin(config);
                let done = jars[browser].finish(&req, true).await;
                prop_assert!(
                    done.set_cookie.is_empty() && !done.touched,
                    "a request that touches nothing changes nothing"
                );
            }
        }
    }
    // Finally every browser reads every view: exactly what the model holds, then nothing.
    for (browser, jar) in jars.iter_mut().enumerate() {
        for (view, id) in VIEWS.iter().enumerate() {
            let req = jar.begin(config);
            let got = crate::browser::shown_texts(&req, id).await;
            let expected = model.remove(&(browser, view)).unwrap_or_default();
            prop_assert_eq!(
                got,
                expected,
                "final read of browser {} view {}",
                browser,
                view
            );
            jar.finish(&req, true).await;
        }
    }
    Ok(())
}
