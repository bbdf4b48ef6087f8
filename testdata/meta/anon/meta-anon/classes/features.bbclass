python __anonymous () {
    # Comments and blank lines are skipped.

    d.appendVar('ORDER', ' features')
    for thing in (d.getVar('EXTRA_THINGS') or '').split():
        if thing == 'beta':
            continue
        d.setVar('HAVE_%s' % thing.upper(), 'yes')
        if thing == 'gamma':
            break
    else:
        d.setVar('LOOP_ELSE', 'ran')
}
