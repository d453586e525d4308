pub mod drift;
pub mod leader;
pub mod run;
pub mod tasks;
