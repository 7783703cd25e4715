//! A future that resolves at the next change of something a shard owns
//! (an account's mail, the outbound queue): the listener of an
//! `event_listener::Event` that the owner notifies after each change.

use event_listener::EventListener;

/// Resolves after the next notification of the event it listens to.
pub struct Changed(EventListener);

impl Changed {
    /// Listens to `event` from now on.
    pub fn on(event: &event_listener::Event) -> Self {
        Changed(event.listen())
    }
}

impl std::future::Future for Changed {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}
