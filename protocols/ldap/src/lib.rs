//! LDAP: the directory as a read-only LDAP server (being written).
