//! The backplane contract: the same cases run against the in-process bus and
//! a real `redis-server`, so the two implementations cannot drift apart
//! (ordering, dedup, trimming by length and age, epochs, overlays, read
//! markers, presence expiry, drafts, statuses, the node registry, signals,
//! the webhook queue, token revocations).
//!
//! Each case is an `async fn(Store)` in `room_log.rs`, `state.rs` or `webhooks.rs`;
//! `contract!` runs it on both.

mod harness;
mod room_log;
mod state;
mod webhooks;

macro_rules! contract {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$module::$case(super::harness::Store::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$module::$case(super::harness::Store::Redis).await })*
        }
    };
}

contract!(
    room_log::publishes_are_numbered_once_in_one_order_that_every_node_hears,
    room_log::a_retry_within_the_dedup_window_is_answered_with_the_original,
    room_log::history_keeps_the_newest_up_to_the_length_bound,
    room_log::messages_older_than_the_age_bound_leave_the_history,
    room_log::pages_read_backwards_by_message_and_forwards_by_entry,
    room_log::an_idle_room_forgets_its_history_and_starts_a_new_epoch,
    room_log::changes_overlay_their_message_and_take_their_own_number,
    state::read_markers_move_forward_only_and_count_unread_messages,
    state::presence_joins_once_per_user_and_expires_with_its_node,
    state::members_lists_are_capped_but_count_everyone,
    state::drafts_are_bounded_per_user_and_statuses_are_kept,
    state::nodes_announce_with_a_ttl_and_withdraw,
    state::signals_are_relayed_unnumbered_and_only_to_subscribers,
    webhooks::the_webhook_queue_keeps_order_leases_and_dead_letters,
    webhooks::revocations_are_shared_and_versioned,
);
