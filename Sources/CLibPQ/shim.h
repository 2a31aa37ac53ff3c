#ifndef JURY_CLIBPQ_SHIM_H
#define JURY_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#endif
