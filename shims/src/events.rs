//! Publishing task events to containerd, reconnecting when containerd has restarted.
//!
//! The crate's publisher connects once to containerd's ttrpc socket; after a containerd
//! restart every publish on the old connection fails (EPIPE). Each failure here drops the
//! connection and retries once on a fresh one, so exits seen after a restart still arrive.

use std::sync::Mutex;

use containerd_shim::protos::protobuf::MessageFull;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::warn;

pub struct Publisher {
    address: String,
    namespace: String,
    remote: Mutex<Option<RemotePublisher>>,
}

impl Publisher {
    pub fn new(address: &str, namespace: &str, first: Option<RemotePublisher>) -> Publisher {
        Publisher {
            address: address.to_string(),
            namespace: namespace.to_string(),
            remote: Mutex::new(first),
        }
    }

    /// Sends one event; a failure is logged, never returned: an event lost must not fail
    /// the task operation that caused it.
    pub fn publish<M: MessageFull>(&self, topic: &str, event: M) {
        let mut remote = self.remote.lock().unwrap();
        for attempt in 0..2 {
            if remote.is_none() {
                match RemotePublisher::new(&self.address) {
                    Ok(p) => *remote = Some(p),
                    Err(e) => {
                        warn!("event {topic}: connect to containerd at {}: {e}", self.address);
                        return;
                    }
                }
            }
            let Some(p) = remote.as_ref() else { return };
            match p.publish(Context::default(), topic, &self.namespace, Box::new(event.clone())) {
                Ok(()) => return,
                Err(e) => {
                    if attempt == 1 {
                        warn!("event {topic}: {e}");
                    }
                    *remote = None;
                }
            }
        }
    }
}
