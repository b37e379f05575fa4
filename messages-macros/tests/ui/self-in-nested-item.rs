use messages_core::prelude::*;

#[with_messages]
async fn settings() {
    // A nested function has no `self`: it is not rewritten.
    fn inner() {
        self.discard();
    }
    inner();
}

fn main() {}
