//! The `MetaStore` conformance suite on every backend: SQLite in a
//! temporary directory and a real PostgreSQL (a fresh database per test).
//! Each property is its own test, `sqlite::NAME` and `postgres::NAME`.

use coffer_server::meta::{self, Meta};

async fn sqlite() -> (Meta, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta::open(None, &dir.path().join("coffer.db"))
        .await
        .unwrap();
    (meta, dir)
}

async fn postgres() -> Meta {
    let url = coffer_tests::postgres::fresh_database().await.unwrap();
    let meta = meta::open(Some(&url), std::path::Path::new("unused"))
        .await
        .unwrap();
    assert_eq!(meta.backend(), "postgres");
    meta
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (meta, _dir) = super::sqlite().await;
                    coffer_server::meta::conformance::$name(meta).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    coffer_server::meta::conformance::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    versions_number_up_and_restore_appends,
    a_version_with_unstored_chunks_is_refused_whole,
    delete_hides_from_listing_and_a_new_version_undeletes,
    listing_pages_in_byte_order_with_health,
    sessions_report_missing_chunks_and_slots,
    finishing_again_returns_the_committed_version_and_never_recommits,
    a_stored_chunk_listed_with_another_size_is_refused,
    keep_last_trims_old_versions_but_the_age_rule_protects_young_ones,
    deleted_files_are_purged_and_their_chunks_become_collectable,
    a_hold_lost_to_gc_refuses_the_record,
    orphans_ripen_only_on_a_later_pass,
    streams_protect_their_chunks_until_commit_or_drop,
    expired_sessions_are_deleted_and_release_their_chunks,
    replica_outcomes_drive_health_and_repair_hints,
    concurrent_commits_to_one_path_number_versions_once_each,
    gc_never_claims_a_chunk_a_racing_commit_references,
    leases_have_one_holder_and_pass_on_after_expiry,
    the_cluster_identity_is_set_once,
    dedup_answers_only_for_the_owners_own_chunks,
    accounts_logins_end_with_password_changes_and_removal,
    a_file_and_a_folder_never_share_a_name,
    quotas_count_every_retained_version_and_refuse_what_crosses,
    open_sessions_are_capped_per_owner_and_bookkept_without_scans,
    open_uploads_reserve_their_bytes_and_streams_count_as_sessions,
    versions_count_against_the_per_owner_limit_empty_ones_too,
    versions_page_newest_first,
    share_links_name_one_version_and_end,
    a_stale_base_version_changes_nothing,
    a_move_deletes_the_old_name_and_versions_the_new,
    the_change_feed_numbers_every_change_and_expires_old_cursors,
    modification_times_travel_with_their_content,
    folders_are_made_empty_and_moved_or_deleted_with_what_is_inside,
    dead_properties_follow_their_file,
    locks_exclude_each_other_and_lapse,
    app_passwords_are_named_once_and_end_when_revoked,
    searches_match_ignoring_ascii_case_and_escape_wildcards,
    sorted_listings_page_by_name_size_and_time_without_repeats,
    packed_chunks_name_their_pack_which_lives_while_they_do,
    packs_found_on_the_nodes_rebuild_where_chunks_are,
);

#[tokio::test]
async fn an_unsupported_database_url_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = meta::open(Some("mysql://u:secret@h/db"), &dir.path().join("x.db"))
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("postgres://"), "{msg}");
    assert!(!msg.contains("secret"), "the password leaked: {msg}");
}
