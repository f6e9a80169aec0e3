package devstack

// CopyVisibility lets tests build a data dir from before history and
// visibility had files of their own.
var CopyVisibility = copyVisibility
