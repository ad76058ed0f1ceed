//! (crm: being written)
