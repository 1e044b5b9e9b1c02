#ifndef MRKPROXY_CLIBPQ_SHIM_H
#define MRKPROXY_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
