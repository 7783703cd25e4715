//! SMTP: inbound MX, submission and SMTPS (being written).
