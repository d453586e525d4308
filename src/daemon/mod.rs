pub mod leader;
pub mod run;
