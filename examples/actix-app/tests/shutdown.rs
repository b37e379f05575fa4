//! Ctrl-C stops the binary gracefully (status 0) even with a live stream open: it closes
//! its streams first, or the graceful stop would wait on them forever.

#[test]
fn ctrl_c_stops_the_server_with_a_live_stream_open() {
    let took = messages_example_shared::testing::stops_gracefully_with_an_open_stream(env!(
        "CARGO_BIN_EXE_messages-example-actix"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("stopped {took:?} after Ctrl-C");
}
