//! Inventory: the model of a kbs inventory file, its loading and validation.
