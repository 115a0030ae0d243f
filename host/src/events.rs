//! Kernel event streams: a broadcast bus that primitives publish changes on
//! and WebSockets subscribe to by topic. Publishing with no subscriber costs
//! a check; a subscriber that falls behind loses the oldest events, never
//! slows the publisher.

use tokio::sync::broadcast;

/// A VM was created, changed state, or was renamed or resized. Payload:
/// `{"id","name","owner","state","change","creator"}`.
pub const HYPERVISOR_VM: &str = "hypervisor.vm";

/// Events kept per subscriber before the oldest are dropped.
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub topic: &'static str,
    /// A JSON object.
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Whether anyone listens: publishers skip building payloads otherwise.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub fn publish(&self, topic: &'static str, payload: String) {
        // An error only means nobody listens.
        let _ = self.sender.send(Event { topic, payload });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

/// The grant a mount needs to subscribe to `topic`, or `None` for an unknown topic.
pub fn grant_for(topic: &str) -> Option<crate::config::Grant> {
    match topic {
        HYPERVISOR_VM => Some(crate::config::Grant::Hypervisor),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_what_is_published_after_they_subscribe() {
        let bus = EventBus::default();
        assert!(!bus.has_subscribers());
        bus.publish(HYPERVISOR_VM, "{\"lost\":true}".into());
        let mut rx = bus.subscribe();
        assert!(bus.has_subscribers());
        bus.publish(HYPERVISOR_VM, "{}".into());
        let event = rx.recv().await.unwrap();
        assert_eq!(event.topic, HYPERVISOR_VM);
        assert_eq!(event.payload, "{}");
    }

    #[test]
    fn topics_map_to_their_grants() {
        assert_eq!(
            grant_for(HYPERVISOR_VM),
            Some(crate::config::Grant::Hypervisor)
        );
        assert_eq!(grant_for("storage.everything"), None);
    }
}
