pub mod damping;
