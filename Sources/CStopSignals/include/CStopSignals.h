#ifndef JURY_STOP_SIGNALS_H
#define JURY_STOP_SIGNALS_H

/// Catches SIGTERM and SIGINT from now on: each one caught writes its number, one byte, to a
/// pipe whose read end this returns (-1, with errno, if the pipe or the handler could not be set).
///
/// A dispatch signal source, which `UnixSignalsSequence` uses, could lose a signal on Linux: a
/// thread that had not blocked it took it in libdispatch's handler, which passed it on to the
/// thread that created the source, where it could stay pending unread. A handler that only
/// writes to a pipe loses nothing, and before it is set the signal's default action holds.
int jury_catch_stop_signals(void);

#endif
