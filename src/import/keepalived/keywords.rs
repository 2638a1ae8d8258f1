//! Which keepalived keywords exist, and what lvsup import does with the ones
//! it does not convert.
//!
//! [`KNOWN`] is the keyword list of keepalived.conf(5) of keepalived 2.2.7
//! (every word that starts a line of its syntax blocks), plus the 1.x names
//! still found in tutorials (`lb_algo`, `lb_kind`, `nb_get_retry`,
//! `lvs_sync_daemon_interface`, `nat_mask`). A word outside it is a typo or
//! an obsolete keyword: keepalived logs "Unknown keyword" and goes on, and so
//! does the importer (a warning). A known keyword that the importer does not
//! convert is either dropped with a warning ([`dropped`]: it changes nothing
//! lvsup builds) or refused ([`unsupported`]: lvsup cannot express it).

/// keepalived's keywords (see the module docs for the source).
pub const KNOWN: &[&str] = &[
    "BFD_CHECK",
    "DNS_CHECK",
    "FILE_CHECK",
    "HTTP_GET",
    "MISC_CHECK",
    "PING_CHECK",
    "SMTP_CHECK",
    "SSL",
    "SSL_GET",
    "TCP_CHECK",
    "UDP_CHECK",
    "accept",
    "advert_int",
    "alpha",
    "auth_pass",
    "auth_type",
    "authentication",
    "bfd_instance",
    "bind_if",
    "bind_port",
    "bindto",
    "ca",
    "certificate",
    "check_unicast_src",
    "checker_log_all_failures",
    "checker_no_swap",
    "checker_priority",
    "checker_process_name",
    "checker_rlimit_rttime",
    "checker_rt_priority",
    "config_save_dir",
    "connect_ip",
    "connect_port",
    "connect_timeout",
    "data_use_instance",
    "dbus_service_name",
    "debug",
    "default_interface",
    "delay",
    "delay_before_retry",
    "delay_loop",
    "digest",
    "disable_local_igmp",
    "dont_track_primary",
    "down_timer_adverts",
    "dynamic",
    "dynamic_interfaces",
    "enable_dbus",
    "enable_script_security",
    "enable_sni",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_vrrp",
    "enable_traps",
    "fall",
    "fast_recovery",
    "fifo_write_vrrp_states_on_reload",
    "flag-1",
    "flag-2",
    "flag-3",
    "fork_delay",
    "fwmark",
    "garp_extra_if",
    "garp_interval",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_master_delay",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_master_repeat",
    "global_defs",
    "global_tracking",
    "gna_interval",
    "group",
    "ha_suspend",
    "helo_name",
    "higher_prio_send_advert",
    "http_protocol",
    "hysteresis",
    "include_check",
    "inhibit_on_failure",
    "init_fail",
    "init_file",
    "instance",
    "interface",
    "interface_up_down_delays",
    "interval",
    "ip_family",
    "key",
    "lb_algo",
    "lb_kind",
    "linkbeat_interfaces",
    "linkbeat_use_polling",
    "log_all_failures",
    "log_unknown_vrids",
    "lower_prio_no_advert",
    "lthreshold",
    "lvs_flush",
    "lvs_flush_on_stop",
    "lvs_method",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "lvs_sched",
    "lvs_sync_daemon",
    "lvs_sync_daemon_interface",
    "lvs_timeouts",
    "max_auto_priority",
    "max_reply_length",
    "mcast_dst_ip",
    "mcast_src_ip",
    "mh-fallback",
    "mh-port",
    "min_auto_priority_delay",
    "min_reply_length",
    "min_rx",
    "min_tx",
    "misc_dynamic",
    "misc_path",
    "misc_timeout",
    "multiplier",
    "name",
    "nat_mask",
    "native_ipv6",
    "nb_get_retry",
    "net_namespace",
    "nftables",
    "nftables_counters",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_priority",
    "no_accept",
    "no_checker_emails",
    "no_email_faults",
    "nopreempt",
    "notification_email",
    "notification_email_from",
    "notify",
    "notify_backup",
    "notify_deleted",
    "notify_down",
    "notify_fault",
    "notify_fifo",
    "notify_fifo_script",
    "notify_master",
    "notify_master_rx_lower_pri",
    "notify_priority_changes",
    "notify_stop",
    "notify_up",
    "old_unicast_checksum",
    "omega",
    "ops",
    "passive",
    "password",
    "path",
    "payload",
    "persistence_engine",
    "persistence_granularity",
    "persistence_timeout",
    "preempt",
    "preempt_delay",
    "priority",
    "process_monitor_rcv_bufs",
    "process_names",
    "promote_secondaries",
    "protocol",
    "quorum",
    "quorum_down",
    "quorum_max",
    "quorum_up",
    "random_seed",
    "real_server",
    "regex",
    "regex_max_offset",
    "regex_min_offset",
    "regex_no_match",
    "regex_options",
    "regex_stack",
    "reload_check_config",
    "reload_file",
    "reload_repeat",
    "reload_time_file",
    "require_reply",
    "retry",
    "rise",
    "router_id",
    "rs_init_notifies",
    "script",
    "script_user",
    "sh-fallback",
    "sh-port",
    "shutdown_script",
    "shutdown_script_timeout",
    "skip_check_adv_addr",
    "smtp_alert",
    "smtp_alert_checker",
    "smtp_alert_vrrp",
    "smtp_connect_timeout",
    "smtp_helo_name",
    "smtp_server",
    "snmp_name",
    "snmp_socket",
    "sorry_server",
    "sorry_server_inhibit",
    "sorry_server_lvs_method",
    "startup_script",
    "startup_script_timeout",
    "state",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "status_code",
    "strict_mode",
    "sync_group_tracking_weight",
    "terminate_delay",
    "timeout",
    "tmp_config_directory",
    "track_bfd",
    "track_file",
    "track_group",
    "track_interface",
    "track_process",
    "track_script",
    "track_src_ip",
    "type",
    "umask",
    "unicast_fault_no_peer",
    "unicast_peer",
    "unicast_src_ip",
    "unicast_ttl",
    "url",
    "use_ipvlan",
    "use_pid_dir",
    "use_vmac",
    "use_vmac_addr",
    "user",
    "uthreshold",
    "version",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_router_id",
    "virtual_routes",
    "virtual_rules",
    "virtual_server",
    "virtual_server_group",
    "virtualhost",
    "vmac_xmit_base",
    "vrrp_check_unicast_src",
    "vrrp_cpu_affinity",
    "vrrp_down_timer_adverts",
    "vrrp_garp_extra_if",
    "vrrp_garp_interval",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_master_repeat",
    "vrrp_gna_interval",
    "vrrp_higher_prio_send_advert",
    "vrrp_instance",
    "vrrp_ipsets",
    "vrrp_iptables",
    "vrrp_lower_prio_no_advert",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_min_garp",
    "vrrp_no_swap",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "vrrp_notify_priority_changes",
    "vrrp_priority",
    "vrrp_process_name",
    "vrrp_rlimit_rttime",
    "vrrp_rt_priority",
    "vrrp_rx_bufs_multiplier",
    "vrrp_rx_bufs_policy",
    "vrrp_script",
    "vrrp_skip_check_adv_addr",
    "vrrp_startup_delay",
    "vrrp_strict",
    "vrrp_sync_group",
    "vrrp_track_file",
    "vrrp_track_process",
    "vrrp_version",
    "warmup",
    "weight",
];

/// Why a known keyword is dropped with a warning: it changes nothing lvsup
/// builds (reporting, process tuning, protocol details lvsup sets itself).
pub fn dropped(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "authentication" => "RFC 5798 (VRRPv3, which lvsup speaks) has no authentication",
        "notification_email"
        | "notification_email_from"
        | "smtp_server"
        | "smtp_connect_timeout"
        | "smtp_helo_name"
        | "smtp_alert"
        | "smtp_alert_vrrp"
        | "smtp_alert_checker"
        | "no_email_faults"
        | "no_checker_emails" => "lvsup sends no e-mail (see `lvsup status` and its metrics)",
        "snmp_name"
        | "snmp_socket"
        | "enable_snmp_checker"
        | "enable_snmp_rfc"
        | "enable_snmp_rfcv2"
        | "enable_snmp_rfcv3"
        | "enable_snmp_vrrp"
        | "enable_traps" => "lvsup has no SNMP agent",
        "nat_mask" => "an obsolete keyword keepalived ignores too",
        // keepalived's SSL_GET never verifies the real server's certificate
        // (its CA file is loaded but peer verification stays off): lvsup's
        // https check with tls_verify = false does the same.
        "SSL" | "ca" | "certificate" | "key" | "password" => {
            "lvsup https checks present no client certificate (a real server that demands one fails the check); keepalived did not verify the server's certificate with it"
        }
        "garp_extra_if"
        | "garp_interval"
        | "garp_lower_prio_delay"
        | "garp_lower_prio_repeat"
        | "garp_master_delay"
        | "garp_master_refresh"
        | "garp_master_refresh_repeat"
        | "garp_master_repeat"
        | "gna_interval"
        | "vrrp_garp_extra_if"
        | "vrrp_garp_interval"
        | "vrrp_garp_lower_prio_delay"
        | "vrrp_garp_lower_prio_repeat"
        | "vrrp_garp_master_delay"
        | "vrrp_garp_master_refresh"
        | "vrrp_garp_master_refresh_repeat"
        | "vrrp_garp_master_repeat"
        | "vrrp_gna_interval"
        | "vrrp_min_garp" => "lvsup sends its own gratuitous ARPs when it takes the VIP",
        "warmup"
        | "alpha"
        | "omega"
        | "fast_recovery"
        | "http_protocol"
        | "log_all_failures"
        | "checker_log_all_failures"
        | "ha_suspend" => {
            "a detail of keepalived's checker with no lvsup setting (see the health mapping)"
        }
        "skip_check_adv_addr"
        | "vrrp_skip_check_adv_addr"
        | "check_unicast_src"
        | "vrrp_check_unicast_src"
        | "dont_track_primary"
        | "lower_prio_no_advert"
        | "higher_prio_send_advert"
        | "vrrp_lower_prio_no_advert"
        | "vrrp_higher_prio_send_advert"
        | "promote_secondaries"
        | "debug"
        | "log_unknown_vrids" => "a VRRP detail lvsup sets itself",
        "enable_script_security"
        | "script_user"
        | "lvs_flush"
        | "lvs_flush_on_stop"
        | "max_auto_priority"
        | "min_auto_priority_delay"
        | "vrrp_priority"
        | "checker_priority"
        | "vrrp_no_swap"
        | "checker_no_swap"
        | "vrrp_rlimit_rttime"
        | "checker_rlimit_rttime"
        | "vrrp_rt_priority"
        | "checker_rt_priority"
        | "vrrp_cpu_affinity"
        | "vrrp_process_name"
        | "checker_process_name"
        | "use_pid_dir"
        | "dynamic_interfaces"
        | "vrrp_startup_delay"
        | "umask"
        | "vrrp_rx_bufs_policy"
        | "vrrp_rx_bufs_multiplier"
        | "vrrp_netlink_cmd_rcv_bufs"
        | "vrrp_netlink_monitor_rcv_bufs"
        | "lvs_netlink_cmd_rcv_bufs"
        | "lvs_netlink_monitor_rcv_bufs"
        | "random_seed"
        | "tmp_config_directory"
        | "config_save_dir" => "keepalived process tuning with no lvsup equivalent",
        _ => return None,
    })
}

/// Why lvsup cannot express a known keyword (the default for known keywords
/// [`dropped`] does not name).
pub fn unsupported(keyword: &str) -> &'static str {
    match keyword {
        "sorry_server_inhibit" => {
            "lvsup removes the sorry server when a real server is back (no weight-0 inhibit)"
        }
        "sorry_server_lvs_method" => {
            "lvsup forwards to the sorry server the way the service forwards (lb_kind)"
        }
        // notify_master/backup/fault/stop convert (`[cluster] notify`); a
        // vrrp_sync_group's only when the group holds the VIP's instance.
        "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
            "lvsup runs notify programs of the VRRP instance that holds the VIP (or of its vrrp_sync_group) only"
        }
        "notify" => {
            "lvsup runs one program per state (notify_master, notify_backup, notify_fault, notify_stop), not a generic notify script given the state as arguments"
        }
        "notify_up"
        | "notify_down"
        | "notify_deleted"
        | "notify_master_rx_lower_pri"
        | "quorum_up"
        | "quorum_down"
        | "notify_fifo"
        | "notify_fifo_script"
        | "vrrp_notify_fifo"
        | "vrrp_notify_fifo_script"
        | "lvs_notify_fifo"
        | "lvs_notify_fifo_script"
        | "startup_script"
        | "shutdown_script" => {
            "lvsup runs programs only on VRRP state changes (master, backup, fault, stop)"
        }
        "misc_dynamic" => "lvsup script checks say up or down (exit 0 or not), they set no weight",
        "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
            "lvsup checks are tcp, http, https and script"
        }
        "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
        | "regex_max_offset" => {
            "lvsup matches the body against plain text (expect_body), not a regular expression"
        }
        "virtualhost" => {
            "lvsup http checks send the real server's address as Host (an https check's `sni` sets it: SSL_GET's virtualhost converts)"
        }
        "enable_sni" => "lvsup sends SNI with an https check's `sni` only (SSL_GET's virtualhost)",
        "persistence_engine" => "lvsup has no persistence engine",
        "virtual_server_group" | "group" => "lvsup has no virtual server groups",
        "vrrp_script" | "track_script" | "track_interface" | "track_process" | "track_file"
        | "track_bfd" | "vrrp_track_file" | "vrrp_track_process" | "track_src_ip" => {
            "lvsup VRRP follows real-server health and its own link, no other tracking"
        }
        "virtual_ipaddress_excluded"
        | "virtual_routes"
        | "virtual_rules"
        | "static_ipaddress"
        | "static_routes"
        | "static_rules" => "lvsup manages only the VIP and the NAT gateway",
        "inhibit_on_failure" => "lvsup removes a failed real server (no weight-0 inhibit)",
        "quorum" | "hysteresis" => "lvsup has no quorum",
        "vrrp_strict" | "strict_mode" => "lvsup has no VRRP strict mode",
        "use_vmac" | "vmac_xmit_base" | "use_ipvlan" => "lvsup uses no virtual MAC",
        "mcast_dst_ip" | "vrrp_mcast_group4" => "lvsup uses the standard VRRP group 224.0.0.18",
        "lvs_timeouts" => "lvsup does not set the IPVS timeouts",
        "ops" | "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
        | "mh-fallback" => "lvsup sets no scheduler flags",
        "uthreshold" | "lthreshold" => "lvsup sets no connection thresholds",
        "connect_ip" | "bindto" | "bind_port" | "bind_if" => {
            "lvsup checks connect from the director to the real server itself"
        }
        _ => "lvsup has no equivalent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyword_list_is_sorted_and_without_duplicates() {
        let mut sorted = KNOWN.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, KNOWN);
    }

    #[test]
    fn dropped_and_named_unsupported_keywords_are_known() {
        for k in KNOWN {
            if let Some(r) = dropped(k) {
                assert!(!r.is_empty());
            }
        }
        for k in [
            "sorry_server",
            "MISC_CHECK",
            "digest",
            "preempt_delay",
            "authentication",
        ] {
            assert!(KNOWN.contains(&k), "{k}");
        }
    }
}
