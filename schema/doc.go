// Package schema holds the app database's SQL migrations, embedded in the
// binary so that `custodyflows migrate` and store.Open need no files on
// disk.
//
// Migrations are files named NNNN_name.sql (0001_init.sql, …). They are
// applied in version order, each once, and never edited after release: a
// change to the schema is a new file with the next number. Versions must run
// from 1 without gaps, which a test checks, so a missing or duplicated file
// fails the build's tests rather than a production start.
package schema
