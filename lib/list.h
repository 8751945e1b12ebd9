/* list: an intrusive doubly-linked list (the libuv QUEUE idea, typed).
 *
 * Embed a zc_link_t in a struct, keep a zc_link_t head, and use
 * ZC_CONTAINER to get back to the struct.  An empty list's head points to
 * itself; so does an unlinked element after zc_link_remove. */
#ifndef ZC_LIB_LIST_H
#define ZC_LIB_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct zc_link {
    struct zc_link *prev; /* previous element, or the head */
    struct zc_link *next; /* next element, or the head */
} zc_link_t;

#define ZC_CONTAINER(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

static inline void zc_link_init(zc_link_t *l) { l->prev = l->next = l; }
static inline bool zc_list_empty(const zc_link_t *head) { return head->next == head; }

static inline void zc_list_push_back(zc_link_t *head, zc_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void zc_link_remove(zc_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    zc_link_init(l);
}

#endif
