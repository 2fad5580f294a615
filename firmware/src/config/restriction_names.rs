//! Every restriction name Postfix's smtpd knows (postconf(5), including the names it still accepts
//! from before 2.3). A `zimbraMtaRestriction` value the box cannot parse but whose first word is
//! one of these is a restriction the policy stage does not apply yet, and is refused as "not
//! supported yet", not as unknown: the admin who pasted it from a Zimbra page learns the truth, and
//! a typo still reads as a typo.

const NAMES: &[&str] = &[
    "check_ccert_access",
    "check_client_a_access",
    "check_client_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_helo_a_access",
    "check_helo_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_policy_service",
    "check_recipient_a_access",
    "check_recipient_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_reverse_client_hostname_access",
    "check_sasl_access",
    "check_sender_a_access",
    "check_sender_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "defer",
    "defer_if_permit",
    "defer_if_reject",
    "defer_unauth_destination",
    "permit",
    "permit_auth_destination",
    "permit_dnswl_client",
    "permit_mynetworks",
    "permit_rhswl_client",
    "permit_sasl_authenticated",
    "permit_tls_all_clientcerts",
    "permit_tls_clientcerts",
    "reject",
    "reject_authenticated_sender_login_mismatch",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_known_sender_login_mismatch",
    "reject_maps_rbl",
    "reject_multi_recipient_bounce",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_non_fqdn_recipient",
    "reject_non_fqdn_sender",
    "reject_plaintext_session",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_recipient",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_sender",
    "reject_sender_login_mismatch",
    "reject_unauth_destination",
    "reject_unauth_pipelining",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_unknown_client",
    "reject_unknown_client_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_hostname",
    "reject_unknown_recipient_domain",
    "reject_unknown_reverse_client_hostname",
    "reject_unknown_sender_domain",
    "reject_unlisted_recipient",
    "reject_unlisted_sender",
    "reject_unverified_recipient",
    "reject_unverified_sender",
    "sleep",
    "warn_if_reject",
];

/// Whether the first word of `value` names a Postfix restriction.
pub fn is_postfix_restriction(value: &str) -> bool {
    let first = value.split_whitespace().next().unwrap_or("");
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_names_are_told_from_typos() {
        assert!(is_postfix_restriction("reject_invalid_hostname"));
        assert!(is_postfix_restriction(
            "check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf"
        ));
        assert!(is_postfix_restriction("REJECT"));
        assert!(!is_postfix_restriction("reject_everything"));
        assert!(!is_postfix_restriction(""));
    }
}
