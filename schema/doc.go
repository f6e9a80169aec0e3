// Package schema holds the app database's SQL migrations, one set per
// dialect, embedded in the binary so that `custodyflows migrate` and
// store.Open need no files on disk. The store applies them with goose
// (github.com/pressly/goose/v3), which records applied versions in its
// table goose_db_version.
//
// Migrations are files named NNNN_name.sql in sqlite/ and postgres/, in
// goose's format (a "-- +goose Up" line; statements holding semicolons
// between StatementBegin and StatementEnd). Both dialects carry the same
// versions with the same names, so a database of either kind reaches the
// same schema; a test checks it. Migrations are forward-only and never
// edited after release: a change to the schema is a new file with the next
// number, in both folders. The store never migrates down; from 0005 on a
// migration may carry a "-- +goose Down" section for an operator who rolls
// a database back by hand. Versions run from 1 without gaps, which a test
// also checks, so a bad merge of two branches that both added a migration
// fails the tests rather than a production start.
package schema
